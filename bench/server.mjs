#!/usr/bin/env node
// Secret reads per second and p99 latency at 50 concurrent clients, audit on, against a bare
// node:http server answering a constant, both on loopback in the same run.
// Usage: npm run build && node bench/server.mjs [--seconds 5] [--clients 50]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values: flags } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, clients: { type: 'string', default: '50' } } });
const SECONDS = Number(flags.seconds);
const CLIENTS = Number(flags.clients);
const BIN = fileURLToPath(new URL('../bin/secrets-server.js', import.meta.url));

const root = mkdtempSync(path.join(tmpdir(), 'rws-bench-'));
const children = [];
const cleanup = () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

/** Starts a process and resolves with the URL of its ready line. */
function start(command, args, pattern) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = pattern.exec(out);
      if (match) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`${command} exited ${code}`)));
  });
}

async function load(url, path, headers) {
  const pool = new Pool(url, { connections: CLIENTS, pipelining: 1 });
  const latencies = [];
  let errors = 0;
  const run = async (until, record) => {
    while (performance.now() < until) {
      const started = performance.now();
      const { statusCode, body } = await pool.request({ path, method: 'GET', headers });
      await body.text();
      if (statusCode !== 200) errors++;
      if (record) latencies.push(performance.now() - started);
    }
  };
  const warmUntil = performance.now() + 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(warmUntil, false)));
  const begin = performance.now();
  const until = begin + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(until, true)));
  const elapsed = (performance.now() - begin) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN, errors, count: latencies.length };
}

// The store, a secret and a token, made with the real commands.
const store = path.join(root, 'store');
const cli = (args, input = '') => execFileSync(BIN, [...args, '--store', store], { input, encoding: 'utf8' });
cli(['init']);
cli(['secret', 'set', 'bench', 'BENCH_SECRET'], 'bench-value-0123456789');
const apiKey = /^key: (\S+)$/m.exec(cli(['apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'BENCH_*', '--max-ttl', '60']))[1];

const serverUrl = await start(process.execPath, [...(process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR] : []), BIN, 'serve', '--store', store, '--port', '0'], /listening on (\S+)\n/);
const generated = await fetch(`${serverUrl}/api/v1/vault/tokens/generate`, {
  method: 'POST',
  headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
  body: JSON.stringify({ subject: 'bench', environment: 'bench', key_pattern: 'BENCH_*', ttl_minutes: 60 }),
});
const { token } = await generated.json();

const bareScript = path.join(root, 'bare.mjs');
writeFileSync(
  bareScript,
  `import http from 'node:http';
const body = JSON.stringify({ environment: 'bench', key: 'BENCH_SECRET', value: 'bench-value-0123456789' });
const server = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(body); });
server.listen(0, '127.0.0.1', () => console.log('bare listening on http://127.0.0.1:' + server.address().port));
process.on('SIGTERM', () => server.close(() => process.exit(0)));`,
);
const bareUrl = await start(process.execPath, [bareScript], /listening on (\S+)\n/);

console.log(`${CLIENTS} concurrent clients, ${SECONDS} s each after 1 s of warm-up, loopback, audit log on`);
const ours = await load(serverUrl, '/api/v1/vault/bench/BENCH_SECRET', { authorization: `Bearer ${token}` });
const bare = await load(bareUrl, '/', {});
const row = (name, r) => `${name.padEnd(26)} ${r.rate.toFixed(0).padStart(8)} reads/s   p99 ${r.p99.toFixed(2).padStart(7)} ms   (${r.count} requests, ${r.errors} non-200)`;
console.log(row('secrets-server GET secret', ours));
console.log(row('bare node:http constant', bare));
console.log(`ratio: ${(ours.rate / bare.rate).toFixed(2)} of the bare server's rate (target: at least 0.50)`);
const [server] = children;
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));
cleanup();
process.exit(ours.errors === 0 ? 0 : 1);
