// The part of undici the vault client uses: a Pool (keep-alive, timeouts) and its request API.
// undici's index also loads fetch, WebSocket, caches, proxies, mocks and more, ≈100 ms on every
// cron run; these three modules are what its index itself wires together for `pool.request`.
// The build bundles them on their own, leaving out the HTTP/2 client and the fetch body module,
// which a pool that never offers h2 and never sends FormData cannot reach, and loads that bundle
// through a V8 code cache in place of this module (build/bundle-vault-client.mjs).
import { setFlagsFromString } from 'node:v8';
import type { Pool as PoolClass } from 'undici';
import Dispatcher from 'undici/lib/dispatcher/dispatcher.js';
import Pool from 'undici/lib/dispatcher/pool.js';
import request from 'undici/lib/api/api-request.js';

// undici parses HTTP with llhttp compiled to WebAssembly. By default V8 recompiles its hot parser
// function with TurboFan on a background thread, and Node cannot exit until that compile ends:
// ≈120 ms after the child had exited, on every vault run (bench/e2e), for a parser that reads
// three small answers. The baseline compiler's code is all a run needs. llhttp is compiled on the
// first connection, after this line.
// Only where Liftoff compiles everything (on other platforms a function it cannot compile would
// abort the process under this flag). build/undici-script.mjs sets it under the same condition.
if (process.arch === 'x64' || process.arch === 'arm64') setFlagsFromString('--liftoff-only');

if (!('request' in Dispatcher.prototype)) Object.defineProperty(Dispatcher.prototype, 'request', { value: request, writable: true, configurable: true });

/** How undici's code was compiled: see build/undici-loader.mjs for the bundled states. */
export type CodeCacheState = 'unbundled' | 'used' | 'rejected' | 'stale' | 'absent';
export const codeCache: CodeCacheState = 'unbundled';
/** Files of the bundled client that are missing; none when running from source. */
export const missingFiles: readonly string[] = [];

export { Pool, type PoolClass };
