// Stands in for src/vault-client/undici.ts in the bundled vault client: loads the bundled undici
// (dist/vault-client/undici.cjs) through the V8 code cache made at build time, so a run neither
// parses its ≈330 KB nor compiles the functions of the first request again (≈15 ms per vault
// run here, bench/e2e). The cache holds one line binding it to the node binary and the build it
// was made for (build/undici-script.mjs), then V8's data. Anything else (no cache, another node
// binary, a cache V8 refuses) compiles from source as usual, and `-v` says which.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cacheBinding, runModule, undiciScript } from './undici-script.mjs';

const filename = fileURLToPath(new URL('./undici.cjs', import.meta.url));
const source = readFileSync(filename, 'utf8');
let state = 'absent';
let cachedData;
try {
  const file = readFileSync(`${filename}.cache`);
  const newline = file.indexOf(0x0a);
  if (newline > 0 && file.toString('utf8', 0, newline) === cacheBinding(source, file.length - newline - 1)) cachedData = file.subarray(newline + 1);
  else state = 'stale';
} catch {
  // No cache: a build that skipped it, or an installed package (the cache is never shipped).
}
const script = undiciScript(source, filename, cachedData);
if (cachedData !== undefined) state = script.cachedDataRejected ? 'rejected' : 'used';

export const { Pool } = runModule(script, filename);
/** @type {import('../src/vault-client/undici.js').CodeCacheState} */
export const codeCache = state;
