'use strict'
// Stands in for undici's HTTP/2 client in the bundled vault client: the Pool never offers h2 in
// ALPN (allowH2 is off), so this is reached only if that changes, and then fails loudly.
module.exports = function connectH2 () {
  throw new Error('run-with-secrets: undici tried HTTP/2, which the bundled vault client leaves out')
}
