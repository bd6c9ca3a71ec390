#!/usr/bin/env node
// What --fallback costs a cron job, and what --offline saves: median wall time of
//   run-with-secrets -e bench -k 'SERVICE_B_*' [--fallback | --offline] -- node -e 0
// against a local secrets-server for 10, 100 and 1,000 matching keys, interleaved in one run.
// The baseline is the plain vault run; --fallback adds HKDF, AES-GCM and the temp-file-and-rename
// write of the copy, measured with nothing queued and again when it also reports one offline use
// (one more request, audited); --offline reads and opens the copy and queues one use. Prints a
// table; asserts nothing. Usage: npm run build && node bench/fallback.mjs [runs=15]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const runs = Number(process.argv[2] ?? 15);
const rws = join(root, 'bin/run-with-secrets.js');
const server = join(root, 'bin/secrets-server.js');
const work = mkdtempSync(join(tmpdir(), 'rws-bench-fallback-'));
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8', XDG_STATE_HOME: join(work, 'state') };

function admin(args, input) {
  const result = spawnSync(server, args, { input, env: baseEnv, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`secrets-server ${args[0]} failed: ${result.stderr}`);
  return result.stdout;
}

async function startServer(store) {
  const child = spawn(server, ['serve', '--store', store, '--port', '0'], { env: baseEnv, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolvePromise, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /listening on (\S+)/.exec(out);
      if (match) resolvePromise(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  return { url, stop: () => new Promise((done) => { child.once('exit', done); child.kill('SIGTERM'); }) };
}

function time(argv, env) {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.slice(0, 6).join(' ')} failed: ${String(result.stderr).trim()}`);
  return ms;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const rows = [];
try {
  for (const count of [10, 100, 1000]) {
    const dir = join(work, String(count));
    const store = join(dir, 'store');
    mkdirSync(dir, { recursive: true });
    admin(['init', '--store', store]);
    const values = Object.fromEntries(Array.from({ length: count }, (_, i) => [`SERVICE_B_KEY_${i}`, `value-${i}-${'x'.repeat(40)}`]));
    admin(['secret', 'import', 'bench', '--format', 'json', '--store', store], JSON.stringify(values));
    const key = /^key: (\S+)$/m.exec(admin(['apikey', 'create', '--store', store, '--name', 'bench', '--environment', 'bench', '--key-pattern', 'SERVICE_B_*']))[1];
    const running = await startServer(store);
    const env = { ...baseEnv, RWS_VAULT_URL: running.url, RWS_API_KEY: key };
    const argv = (...flags) => [rws, '-e', 'bench', '-k', 'SERVICE_B_*', ...flags, '--', 'node', '-e', '0'];
    const samples = { plain: [], fallback: [], reporting: [], offline: [] };
    for (let round = 0; round < runs + 2; round++) {
      const p = time(argv(), env);
      const f = time(argv('--fallback'), env);
      const o = time(argv('--offline'), env);
      const r = time(argv('--fallback'), env);
      if (round >= 2) {
        samples.plain.push(p);
        samples.fallback.push(f);
        samples.offline.push(o);
        samples.reporting.push(r);
      }
    }
    await running.stop();
    const cacheDir = join(baseEnv.XDG_STATE_HOME, 'run-with-secrets', 'fallback');
    const file = readdirSync(cacheDir).find((name) => name.endsWith('.bin'));
    rows.push({ count, plain: median(samples.plain), fallback: median(samples.fallback), reporting: median(samples.reporting), offline: median(samples.offline), bytes: statSync(join(cacheDir, file)).size });
    rmSync(cacheDir, { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`full run (wrapper + node -e 0), median of ${runs}, node ${process.version}`);
console.log('keys   plain vault ms   --fallback ms   (+ms)   + 1 use reported ms   (+ms)   --offline ms   copy bytes');
for (const row of rows) {
  const cells = [row.plain.toFixed(1).padStart(16), row.fallback.toFixed(1).padStart(15), (row.fallback - row.plain).toFixed(1).padStart(7), row.reporting.toFixed(1).padStart(21), (row.reporting - row.plain).toFixed(1).padStart(7), row.offline.toFixed(1).padStart(14), String(row.bytes).padStart(12)];
  console.log(`${String(row.count).padStart(5)} ${cells.join(' ')}`);
}
