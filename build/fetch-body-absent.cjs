'use strict'
// Stands in for undici's fetch body module in the bundled vault client. undici's HTTP/1 client
// loads it only to send a FormData body; the vault client sends JSON text, so this is reached
// only if that changes, and then fails loudly instead of loading the whole fetch implementation.
module.exports.extractBody = function extractBody () {
  throw new Error('run-with-secrets: undici tried to send a FormData body, which the bundled vault client leaves out')
}
