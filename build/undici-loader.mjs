// Stands in for src/vault-client/undici.ts in the bundled vault client: loads the bundled undici
// (dist/vault-client/undici.cjs) through the V8 code cache made at build time, so a run neither
// parses it nor compiles the functions of the first request again (bench/e2e). The cache is
// bound to the node binary that made it and holds a copy of the source it was made from
// (build/undici-script.mjs). Anything else (no cache, another node binary, another source, a
// cache V8 refuses) compiles from source as usual, and `-v` says which.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cacheHeader, runModule, undiciScript } from './undici-script.mjs';

const file = (name) => fileURLToPath(new URL(`./${name}`, import.meta.url));
const filename = file('undici.cjs');

/** Files of the bundled client that are not here (a partial copy of dist/): named in the error. */
export const missingFiles = ['undici.cjs', 'llhttp_simd.wasm', 'llhttp.wasm'].filter((name) => !existsSync(file(name))).map((name) => `dist/vault-client/${name}`);

let state = 'absent';
let Pool;
if (missingFiles.length === 0) {
  const source = readFileSync(filename);
  let cachedData;
  try {
    const cache = readFileSync(`${filename}.cache`);
    const start = cache.indexOf(0x0a) + 1;
    const header = cacheHeader(source.length, cache.length - start - source.length);
    const whole = start > 0 && cache.toString('utf8', 0, start) === header;
    if (whole && cache.subarray(start, start + source.length).equals(source)) cachedData = cache.subarray(start + source.length);
    else state = 'stale';
  } catch {
    // No cache: a build that skipped it, or an installed package (the cache is never shipped).
  }
  const script = undiciScript(source.toString('utf8'), filename, cachedData);
  if (cachedData !== undefined) state = script.cachedDataRejected ? 'rejected' : 'used';
  ({ Pool } = runModule(script, filename));
}

export { Pool };
/** @type {import('../src/vault-client/undici.js').CodeCacheState} */
export const codeCache = state;
