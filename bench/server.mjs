#!/usr/bin/env node
// Secret reads per second and p99 latency at 50 concurrent clients, audit on, against a bare
// node:http server answering a constant, both on loopback in the same run.
//
// Fairness on a small machine: the load generator is a child process of its own (this script
// stays idle while it runs), started afresh for every measurement with the same warm-up; both
// servers run for the whole benchmark and are measured in several rounds, alternating which goes
// first, so that drift in the machine's load hits both alike. The result is the median of the
// rounds: both rates, both p99s, and the median of the per-round ratios (each round's pair is
// measured back to back).
//
// The request is the same every time: GET /api/v1/vault/bench/BENCH_SECRET over loopback with a
// token freshly generated for the round (no usage limit unless --usage-limit is given, in which
// case every read also appends a synced use to the token state log), audit log on.
//
// Then the same reads with and without IDLE idle connections held open (bench/idle-connections.mjs),
// alternating, to show what an idle-connection flood costs the clients that read.
//
// Usage: npm run build && node bench/server.mjs [--rounds 5] [--seconds 3] [--warmup 1] [--clients 50] [--usage-limit N] [--idle 5000]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    clients: { type: 'string', default: '50' },
    'usage-limit': { type: 'string' },
    idle: { type: 'string', default: '5000' },
    // Internal: run as the load generator against one URL and print one JSON line.
    load: { type: 'string' },
  },
});
const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const CLIENTS = Number(flags.clients);
const ROUNDS = Number(flags.rounds);
const USAGE_LIMIT = flags['usage-limit'] === undefined ? undefined : Number(flags['usage-limit']);
const SELF = fileURLToPath(import.meta.url);
const BIN = fileURLToPath(new URL('../bin/secrets-server.js', import.meta.url));
const SECRET_PATH = '/api/v1/vault/bench/BENCH_SECRET';

if (flags.load !== undefined) {
  const result = await load(flags.load, process.env.BENCH_PATH ?? '/', process.env.BENCH_TOKEN);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

/** Load generator: CLIENTS loops of one request at a time over a pool of CLIENTS connections. */
async function load(url, requestPath, token) {
  const { Pool } = await import('undici');
  const pool = new Pool(url, { connections: CLIENTS, pipelining: 1 });
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const latencies = [];
  let errors = 0;
  const run = async (until, record) => {
    while (performance.now() < until) {
      const started = performance.now();
      const { statusCode, body } = await pool.request({ path: requestPath, method: 'GET', headers });
      await body.text();
      if (statusCode !== 200) errors++;
      if (record) latencies.push(performance.now() - started);
    }
  };
  const warmUntil = performance.now() + WARMUP * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(warmUntil, false)));
  const begin = performance.now();
  const until = begin + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(until, true)));
  const elapsed = (performance.now() - begin) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN, errors, count: latencies.length };
}

const root = mkdtempSync(path.join(tmpdir(), 'rws-bench-'));
const children = [];
const cleanup = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

/** Starts a long-running process and resolves with the URL of its ready line. */
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

/** One measurement: a fresh load-generator process against `url`. */
function measure(url, requestPath, token) {
  const args = [SELF, '--load', url, '--seconds', String(SECONDS), '--warmup', String(WARMUP), '--clients', String(CLIENTS)];
  const env = { ...process.env, BENCH_PATH: requestPath, ...(token === undefined ? {} : { BENCH_TOKEN: token }) };
  delete env.BENCH_PROFILE_DIR;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
}

// The store, a secret and an API key, made with the real commands.
const store = path.join(root, 'store');
const cli = (args, input = '') => execFileSync(BIN, [...args, '--store', store], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
cli(['init']);
cli(['secret', 'set', 'bench', 'BENCH_SECRET'], 'bench-value-0123456789');
const apiKey = /^key: (\S+)$/m.exec(cli(['apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'BENCH_*', '--max-ttl', '60']))[1];

const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR] : [];
// The cap is raised above the idle connections held below, so that they are held, not evicted.
const serverUrl = await start(process.execPath, [...profile, BIN, 'serve', '--store', store, '--port', '0', '--max-connections', '8192'], /listening on (\S+)\n/);

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

async function freshToken() {
  const response = await fetch(`${serverUrl}/api/v1/vault/tokens/generate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject: 'bench', environment: 'bench', key_pattern: 'BENCH_*', ttl_minutes: 60, ...(USAGE_LIMIT === undefined ? {} : { usage_limit: USAGE_LIMIT }) }),
  });
  if (response.status !== 201) throw new Error(`token generation answered ${response.status}`);
  return (await response.json()).token;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const row = (name, r) => `${name.padEnd(28)} ${r.rate.toFixed(0).padStart(7)} reads/s   p99 ${r.p99.toFixed(2).padStart(6)} ms`;

console.log(
  `${CLIENTS} concurrent clients, loopback, audit log on${USAGE_LIMIT === undefined ? '' : `, usage_limit ${USAGE_LIMIT}`}; ` +
    `${ROUNDS} rounds of ${WARMUP} s warm-up + ${SECONDS} s per server, alternating order, fresh load-generator process each`,
);
const rounds = [];
for (let round = 0; round < ROUNDS; round++) {
  const token = await freshToken();
  const measureOurs = () => measure(serverUrl, SECRET_PATH, token);
  const measureBare = () => measure(bareUrl, '/', undefined);
  let ours, bare;
  if (round % 2 === 0) {
    ours = await measureOurs();
    bare = await measureBare();
  } else {
    bare = await measureBare();
    ours = await measureOurs();
  }
  rounds.push({ ours, bare, ratio: ours.rate / bare.rate });
  console.log(
    `round ${round + 1} (${round % 2 === 0 ? 'ours first' : 'bare first'}): ours ${ours.rate.toFixed(0)}/s p99 ${ours.p99.toFixed(2)} ms` +
      `${ours.errors ? ` (${ours.errors} non-200)` : ''}, bare ${bare.rate.toFixed(0)}/s p99 ${bare.p99.toFixed(2)} ms, ratio ${(ours.rate / bare.rate).toFixed(2)}`,
  );
}

const errors = rounds.reduce((sum, r) => sum + r.ours.errors + r.bare.errors, 0);
const ours = { rate: median(rounds.map((r) => r.ours.rate)), p99: median(rounds.map((r) => r.ours.p99)) };
const bare = { rate: median(rounds.map((r) => r.bare.rate)), p99: median(rounds.map((r) => r.bare.p99)) };
const ratio = median(rounds.map((r) => r.ratio));
console.log(`medians over ${ROUNDS} rounds:`);
console.log(row('secrets-server GET secret', ours));
console.log(row('bare node:http constant', bare));
console.log(
  `ratio: ${ratio.toFixed(2)} of the bare server's rate (median of per-round ratios; ratio of medians ${(ours.rate / bare.rate).toFixed(2)}; ` +
    `range ${Math.min(...rounds.map((r) => r.ratio)).toFixed(2)}-${Math.max(...rounds.map((r) => r.ratio)).toFixed(2)}) (target: at least 0.50)`,
);
console.log(`audit log: ${statSync(path.join(store, 'audit.log')).size} bytes written; ${errors} non-200 answers`);

const IDLE = Number(flags.idle);
if (IDLE > 0) {
  const { startIdleHolder } = await import('./idle-connections.mjs');
  console.log(`\nsecrets-server reads with ${IDLE} idle connections held open (from many 127.4.x.y addresses, reopened when closed):`);
  const idleRounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const token = await freshToken();
    const measureHeld = async () => {
      const holder = await startIdleHolder(serverUrl, IDLE);
      try {
        return await measure(serverUrl, SECRET_PATH, token);
      } finally {
        await holder.stop();
      }
    };
    let without, held;
    if (round % 2 === 0) {
      without = await measure(serverUrl, SECRET_PATH, token);
      held = await measureHeld();
    } else {
      held = await measureHeld();
      without = await measure(serverUrl, SECRET_PATH, token);
    }
    idleRounds.push({ without, held, ratio: held.rate / without.rate });
    console.log(`round ${round + 1}: without ${without.rate.toFixed(0)}/s p99 ${without.p99.toFixed(2)} ms, with ${IDLE} idle ${held.rate.toFixed(0)}/s p99 ${held.p99.toFixed(2)} ms${held.errors ? ` (${held.errors} non-200)` : ''}, ratio ${(held.rate / without.rate).toFixed(2)}`);
  }
  console.log(row(`without idle connections`, { rate: median(idleRounds.map((r) => r.without.rate)), p99: median(idleRounds.map((r) => r.without.p99)) }));
  console.log(row(`with ${IDLE} idle`, { rate: median(idleRounds.map((r) => r.held.rate)), p99: median(idleRounds.map((r) => r.held.p99)) }));
  console.log(`ratio with/without idle connections: ${median(idleRounds.map((r) => r.ratio)).toFixed(2)} (target: at least 0.80)`);
}

const [server] = children;
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));
cleanup();
process.exit(errors === 0 ? 0 : 1);
