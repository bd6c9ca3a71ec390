'use strict'
// Stands in for undici's lib/llhttp/llhttp-wasm.js in the bundled vault client: the same
// WebAssembly bytes, read from llhttp.wasm beside the bundle (written by the build) instead of
// decoded from a 72 KB base64 string that every run would otherwise have to parse.
const { readFileSync } = require('node:fs')
const { join } = require('node:path')

let wasm
Object.defineProperty(module, 'exports', {
  get: () => (wasm ??= readFileSync(join(__dirname, 'llhttp.wasm')))
})
