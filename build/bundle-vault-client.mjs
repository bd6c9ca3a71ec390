// Second build step, after tsc: replaces tsc's one-file-per-module output of src/vault-client
// with two files and a code cache, because every vault run pays for loading them:
//   dist/vault-client/undici.cjs        the part of undici the client uses (src/vault-client/undici.ts),
//                                       without its HTTP/2 client and fetch body module
//   dist/vault-client/undici.cjs.cache  V8's code cache of it, warmed (build/cache-undici.mjs)
//   dist/vault-client/llhttp*.wasm      undici's HTTP parser, which undici itself carries as base64
//   dist/vault-client/index.cjs         the client itself (CommonJS, like the CLI that requires it),
//                                       loading undici.cjs through the cache
// Loading undici module by module costs ≈50 ms per vault run here; this, ≈15 ms (≈22 ms without
// the cache).
// Everything outside src/vault-client stays a separate module, so our error classes keep one
// identity across the program. Tests that import src/ run the same code unbundled; the
// end-to-end tests run these files.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const clientDir = join(root, 'src/vault-client/');
const outDir = join(root, 'dist/vault-client');
const undiciLib = join(root, 'node_modules/undici/lib');
const kept = new Set(['index.cjs', 'undici.cjs', 'undici.cjs.cache', 'llhttp.wasm', 'llhttp_simd.wasm']);
/** Our modules outside the client that its bundle carries a copy of: plain functions the server uses too. */
const COPIED = new Set([join(root, 'src/json-duplicate-names.js')]);

// A cache of an earlier build goes first; tsc's per-module files only once the bundles are written,
// so that a failed build leaves tsc's working, unbundled client.
rmSync(join(outDir, 'undici.cjs.cache'), { force: true });

await build({
  input: join(clientDir, 'undici.ts'),
  platform: 'node',
  logLevel: 'warn',
  external: (id) => id.startsWith('node:'),
  resolve: {
    extensionAlias: { '.js': ['.ts', '.js'] },
    alias: {
      // Two modules the client cannot reach (see each stand-in), left out: ≈250 KB less to compile.
      [join(undiciLib, 'dispatcher/client-h2.js')]: join(root, 'build/h2-absent.cjs'),
      [join(undiciLib, 'web/fetch/body.js')]: join(root, 'build/fetch-body-absent.cjs'),
      // The HTTP parser's WebAssembly, as .wasm files beside the bundle instead of base64 in it.
      [join(undiciLib, 'llhttp/llhttp_simd-wasm.js')]: join(root, 'build/llhttp-simd-wasm-file.cjs'),
      [join(undiciLib, 'llhttp/llhttp-wasm.js')]: join(root, 'build/llhttp-wasm-file.cjs'),
    },
  },
  output: { file: join(outDir, 'undici.cjs'), format: 'cjs' },
  write: true,
});

// Two of Node's modules undici loads for little, ≈3 ms of every vault run: node:http, for an
// `instanceof IncomingMessage` on streams the client never hands it and for the default of
// maxHeaderSize, which the client always sets (src/vault-client/http.ts); and node:assert, for
// its internal invariants, called as a plain function. A release of undici that uses them
// otherwise fails the build here rather than at run time.
const shims = [
  ['const { IncomingMessage } = require("node:http");', 'const IncomingMessage = class NotUsedByThisClient {};'],
  ['const http = require("node:http");', 'const http = void 0;'],
];
let undici = readFileSync(join(outDir, 'undici.cjs'), 'utf8');
for (const [from, to] of shims) {
  if (undici.split(from).length !== 2) throw new Error(`build: undici.cjs no longer has exactly one ${from}`);
  undici = undici.replace(from, to);
}
if (/\bassert\.|require\("node:http"\)/.test(undici)) throw new Error('build: undici.cjs uses node:assert or node:http beyond what the stand-ins cover');
undici = undici.replaceAll('const assert = require("node:assert");', 'const assert = invariant;');
undici = `/** undici's internal invariants (node:assert as a function, without loading it). */\nfunction invariant(value, message) {\n\tif (!value) throw Object.assign(new Error(message ?? "undici: invariant failed"), { code: "ERR_ASSERTION" });\n}\n${undici}`;
writeFileSync(join(outDir, 'undici.cjs'), undici);

const requireUndici = createRequire(join(undiciLib, 'index.js'));
for (const name of ['llhttp_simd', 'llhttp']) writeFileSync(join(outDir, `${name}.wasm`), requireUndici(`./llhttp/${name === 'llhttp' ? 'llhttp-wasm' : 'llhttp_simd-wasm'}.js`));

await build({
  input: join(clientDir, 'index.ts'),
  platform: 'node',
  logLevel: 'warn',
  // Node's built-ins, our modules outside the client and other packages are imported, not copied,
  // but for modules of plain functions that the server shares (no class whose identity matters).
  external: (id, importer) => {
    if (id.startsWith('node:')) return true;
    if (id.startsWith('../')) return importer?.startsWith(clientDir) === true && !COPIED.has(join(dirname(importer), id));
    return !id.startsWith('.') && !id.startsWith('/');
  },
  resolve: {
    extensionAlias: { '.js': ['.ts', '.js'] },
    alias: { [join(clientDir, 'undici.ts')]: join(root, 'build/undici-loader.mjs') },
  },
  output: { file: join(outDir, 'index.cjs'), format: 'cjs' },
  write: true,
});

for (const name of readdirSync(outDir)) if (!kept.has(name)) rmSync(join(outDir, name));
// Our modules outside the client are required as the CommonJS files build/bundle-cli.mjs makes
// of them (dist/errors.cjs...): one copy of each class per process, shared with the CLI.
let client = readFileSync(join(outDir, 'index.cjs'), 'utf8').replace(/require\("\.\.\/([\w-]+)\.js"\)/g, 'require("../$1.cjs")');
writeFileSync(join(outDir, 'index.cjs'), client);
if (/\bfrom "undici|require\("undici/.test(client)) throw new Error('dist/vault-client/index.cjs requires undici directly; it must go through undici.cjs');
// The cache only saves time: a machine where it cannot be made (no loopback, say) still builds.
try {
  execFileSync(process.execPath, [join(root, 'build/cache-undici.mjs')], { stdio: ['ignore', 'inherit', 'pipe'] });
} catch (error) {
  const output = String(error.stderr ?? error.message);
  const reason = /^\w*Error\b.*$/m.exec(output)?.[0] ?? output.trim().split('\n')[0];
  rmSync(join(outDir, 'undici.cjs.cache.tmp'), { force: true });
  process.stderr.write(`build: no code cache for undici (${reason}); vault runs will compile it from source, about 15 ms slower\n`);
}
