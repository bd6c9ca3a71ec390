// What the bundled undici (dist/vault-client/undici.cjs) is compiled as, and what its V8 code
// cache is bound to; shared by the loader and the code-cache builder.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Script } from 'node:vm';

/**
 * The CommonJS module wrapper, as Node's own loader writes it. `--liftoff-only` (see
 * src/vault-client/undici.ts, which sets it under the same condition) comes first: V8 flags are
 * part of a code cache's key.
 */
export function undiciScript(source, filename, cachedData) {
  if (process.arch === 'x64' || process.arch === 'arm64') setFlagsFromString('--liftoff-only');
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename, cachedData });
}

/** Runs the compiled module as Node would run a CommonJS file, and returns its exports. */
export function runModule(script, filename) {
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(filename), module, filename, dirname(filename));
  return module.exports;
}

/**
 * The cache file: this line, then a copy of the source it was made from, then V8's data. V8
 * checks its own version and flags, but not the build of the node binary nor the source beyond
 * its length, and it does not survive data it cannot read (the process aborts). So a cache is
 * used only by the very node binary that made it, only whole, and only when the source beside
 * it is byte for byte the copy inside it; anything else compiles from source.
 */
export function cacheHeader(sourceSize, dataSize) {
  const node = statSync(process.execPath);
  return `${JSON.stringify({ node: process.execPath, nodeVersion: process.version, nodeSize: node.size, nodeMtimeMs: node.mtimeMs, sourceSize, dataSize })}\n`;
}
