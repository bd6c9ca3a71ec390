// The vault client as the build ships it (build/bundle-vault-client.mjs): undici bundled on its
// own and loaded through a V8 code cache bound to the node binary and the source it was made from.
// Every state of that cache must give the same, working run; only `-v` tells them apart. And
// the bundle, which leaves undici's HTTP/2 client out, must speak HTTP/1.1 to a server that
// would rather speak h2.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, makeApiKey, makeStore, startServer, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { makeTestCa } from '../vault-client/helpers/test-ca.js';
import { baseEnv, BIN, fixture, makeRuntimeDir, removeDir, ROOT } from '../helpers/cli.js';

const SECRET = 'bundle-secret-value-123';
const BUNDLE = 'dist/vault-client/undici.cjs';
const CACHE = `${BUNDLE}.cache`;

let store: TestStore;
let server: RunningServer;
let apiKey: string;
let runtimeDir: string;
let copies: string;

beforeAll(async () => {
  store = await makeStore({ prod: { SERVICE_B_TOKEN: SECRET } });
  apiKey = (await makeApiKey(store, ['prod'], ['SERVICE_B_*'])).key;
  server = await startServer(store);
  runtimeDir = makeRuntimeDir();
  copies = mkdtempSync(path.join(tmpdir(), 'rws-build-copy-'));
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
  if (runtimeDir) removeDir(runtimeDir);
  if (copies) rmSync(copies, { recursive: true, force: true });
});

/** A vault run of `bin` through `node` (with extra Node flags); the child prints its environment. */
function runVault(bin: string, args: string[] = [], nodeFlags: string[] = []) {
  return execa(process.execPath, [...nodeFlags, bin, ...args, '-e', 'prod', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], {
    reject: false,
    extendEnv: false,
    env: baseEnv(runtimeDir, { RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey }),
  });
}

/** A `-v` vault run that must inject the secret and print nothing secret; returns the code cache state it reports. */
async function vaultRun(bin: string, nodeFlags: string[] = []) {
  const result = await runVault(bin, ['-v'], nodeFlags);
  expect(result.exitCode, result.stderr).toBe(0);
  expect((JSON.parse(result.stdout) as Record<string, string>).SERVICE_B_TOKEN).toBe(SECRET);
  expect(result.stderr).not.toContain(SECRET);
  expect(result.stderr).not.toContain(apiKey);
  return /vault: undici code cache (\w+)/.exec(result.stderr)?.[1];
}

/**
 * The package as installed: bin, dist and package.json copied, beside a node_modules holding
 * every package of ours but undici, which the build bundles and nothing may load at run time.
 */
function copyPackage(name: string): string {
  const dir = path.join(copies, name);
  for (const entry of ['bin', 'dist', 'package.json']) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  mkdirSync(path.join(dir, 'node_modules'));
  for (const entry of readdirSync(path.join(ROOT, 'node_modules'))) {
    if (entry !== 'undici') symlinkSync(path.join(ROOT, 'node_modules', entry), path.join(dir, 'node_modules', entry));
  }
  return dir;
}

describe('the bundled vault client and its code cache', () => {
  it('the build made a cache this node uses', async () => {
    expect(await vaultRun(BIN)).toBe('used');
  });

  it('other V8 flags: V8 refuses the cache and the run compiles from source', async () => {
    expect(await vaultRun(BIN, ['--no-lazy-feedback-allocation'])).toBe('rejected');
  });

  it('a copy of the build keeps its cache; with another source, a cut cache or none it compiles from source', async () => {
    const copy = copyPackage('copy');
    expect(await vaultRun(path.join(copy, 'bin/run-with-secrets.js'))).toBe('used');

    // An edit that keeps the length: V8 alone would take the cache and run the old code.
    const edited = copyPackage('edited');
    const source = readFileSync(path.join(edited, BUNDLE), 'utf8');
    expect(source).toContain('// node_modules/undici/lib/core/errors.js');
    writeFileSync(path.join(edited, BUNDLE), source.replace('// node_modules/undici/lib/core/errors.js', '// NODE_MODULES/undici/lib/core/errors.js'));
    expect(await vaultRun(path.join(edited, 'bin/run-with-secrets.js'))).toBe('stale');

    // V8 aborts the process on cache data it cannot read, so a cut cache must never reach it.
    const cut = copyPackage('cut');
    const whole = readFileSync(path.join(cut, CACHE));
    writeFileSync(path.join(cut, CACHE), whole.subarray(0, whole.length - 1000));
    expect(await vaultRun(path.join(cut, 'bin/run-with-secrets.js'))).toBe('stale');

    const missing = copyPackage('missing');
    rmSync(path.join(missing, CACHE));
    expect(await vaultRun(path.join(missing, 'bin/run-with-secrets.js'))).toBe('absent');
  });

  it('a partial copy of dist/ fails with one line naming the missing file, before any request', async () => {
    const partial = copyPackage('partial');
    rmSync(path.join(partial, 'dist/vault-client/llhttp_simd.wasm'));
    const audit = () => JSON.stringify(auditRowsSync(store.dir));
    const before = audit();
    const result = await runVault(path.join(partial, 'bin/run-with-secrets.js'));
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^run-with-secrets: error RWS_INSTALL_INCOMPLETE: the installed run-with-secrets lacks dist\/vault-client\/llhttp_simd\.wasm \(hint: reinstall/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(audit()).toBe(before);
  });

  it('is never shipped: npm pack leaves the cache out', async () => {
    expect(existsSync(path.join(ROOT, CACHE))).toBe(true);
    const result = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    const files = (JSON.parse(result.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path);
    expect(files).toContain('dist/vault-client/undici.cjs');
    expect(files).toContain('dist/vault-client/index.cjs');
    expect(files).toContain('dist/vault-client/llhttp_simd.wasm');
    expect(files).toContain('dist/vault-client/llhttp.wasm');
    expect(files.filter((file) => file.includes('.cache'))).toEqual([]);
  });
});

describe('HTTP/2 left out of the bundle', () => {
  it('a TLS server that prefers h2 is spoken to in HTTP/1.1', async () => {
    const ca = await makeTestCa(store.root);
    const seen: string[] = [];
    const h2 = createSecureServer({ cert: readFileSync(ca.serverCert), key: readFileSync(ca.serverKey), allowHTTP1: true }, (request: Http2ServerRequest, response: Http2ServerResponse) => {
      seen.push(`${request.httpVersion} ${request.method} ${request.url}`);
      if (request.url.endsWith('/healthz')) response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      else response.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"RWS_UNAUTHORIZED","message":"no"}}');
    });
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(h2.address() as { port: number }).port}`;
      const result = await execa(BIN, ['check', '-e', 'prod'], {
        reject: false,
        extendEnv: false,
        env: baseEnv(runtimeDir, { RWS_VAULT_URL: url, RWS_API_KEY: apiKey, RWS_CA_FILE: ca.caCert }),
      });
      expect(result.stdout).toContain(`✓ server: ${url} answers over verified TLS`);
      expect(result.stdout).toMatch(/✗ token: .*\[RWS_VAULT_AUTH\]/);
      expect(result.exitCode).toBe(125);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      for (const request of seen) expect(request).toMatch(/^1\.1 /);
    } finally {
      await new Promise((resolve) => h2.close(resolve));
    }
  });
});
