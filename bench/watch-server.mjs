#!/usr/bin/env node
// What 1,000 idle watchers cost the server: its resident memory and CPU while they wait, against
// the same server process with no watchers, in one run. Watchers long-poll
// `POST /api/v1/vault/secrets/batch?wait=W` with the ETag of their last answer, as
// `run-with-secrets --watch` does; nothing changes while the server is measured.
//
// Phases, on one server (SQLite state by default; --state postgres for a throwaway PostgreSQL):
//   1. no watchers: the server after a warm-up, idle;
//   2. held: N watchers, each with one token, re-asking wait=60 as each wait ends (the pure cost
//      of held requests);
//   3. one `secret set` wakes them all: the time until every watcher has the new values;
//   4. refreshing: N watchers doing what the wrapper does per refresh: mint a token, long-poll
//      wait=W with it, revoke it (one mint, one batch, one revoke per refresh and watcher).
// The watchers run in a process of their own (its CPU is not counted). CPU is the server
// process's user + system time from /proc over the window; memory is its VmRSS, sampled each
// second (mean and peak).
//
// The figures are for a quiet machine: on a loaded one, expect connect timeouts during the ramp
// (the watchers retry them, and the run reports how many).
//
// Usage: npm run build && node bench/watch-server.mjs [--watchers 1000] [--seconds 30] [--wait 30]
//        [--state sqlite|postgres]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    watchers: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '30' },
    wait: { type: 'string', default: '30' },
    state: { type: 'string', default: 'sqlite' },
    // Internal: run as the watchers' process (URL; the API key comes in the environment).
    watch: { type: 'string' },
    mode: { type: 'string', default: 'held' },
  },
});
const WATCHERS = Number(flags.watchers);
const SECONDS = Number(flags.seconds);
const WAIT = Number(flags.wait);
const SELF = fileURLToPath(import.meta.url);
const BIN = fileURLToPath(new URL('../bin/secrets-server.js', import.meta.url));
const BODY = JSON.stringify({ environment: 'bench' });
/** Watchers arrive over this long. */
const RAMP_MS = 10_000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (flags.watch !== undefined) {
  await runWatchers(flags.watch, process.env.BENCH_API_KEY, flags.mode);
}

/**
 * The watchers' process. Prints `ready` once every watcher holds a request, `woken <ms epoch>`
 * once every watcher has had an answer with new values, and a JSON line of counts at SIGTERM.
 */
async function runWatchers(url, apiKey, mode) {
  const { Agent, request } = await import('undici');
  const dispatcher = new Agent({ connections: null, keepAliveTimeout: 120_000, bodyTimeout: 0, headersTimeout: 0, connect: { timeout: 30_000 } });
  const counts = { 200: 0, 304: 0, other: 0, errors: 0, mints: 0, revokes: 0 };
  let holding = 0;
  let changed = 0;
  const post = async (pathname, credential, body, headers = {}) => {
    const response = await request(`${url}${pathname}`, { method: 'POST', dispatcher, headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json', ...headers }, body });
    const text = await response.body.text();
    return { status: response.statusCode, etag: response.headers.etag, text };
  };
  const mint = async () => {
    const reply = await post('/api/v1/vault/tokens/generate', apiKey, JSON.stringify({ subject: 'watcher', environment: 'bench', key_pattern: 'BENCH_*', ttl_minutes: 60 }));
    if (reply.status !== 201) throw new Error(`mint answered ${reply.status}`);
    counts.mints++;
    return JSON.parse(reply.text).token;
  };
  /** One watcher; a failed request (a connect timeout on a loaded machine) is retried after a pause, as the wrapper does. */
  const watcher = async (index) => {
    await sleep((index * RAMP_MS) / WATCHERS); // arrivals spread out, as a fleet starting up
    let token;
    let etag;
    let first = true;
    for (;;) {
      try {
        if (token === undefined || mode === 'refreshing') token = await mint();
        if (etag === undefined) etag = (await post('/api/v1/vault/secrets/batch', token, BODY)).etag;
        const wait = mode === 'held' ? 60 : WAIT;
        const pending = post(`/api/v1/vault/secrets/batch?wait=${wait}`, token, BODY, { 'if-none-match': etag });
        if (first) {
          first = false;
          // Counted as holding once the server has had a moment to take the request.
          setTimeout(() => {
            if (++holding === WATCHERS) process.stdout.write('ready\n');
          }, 200);
        }
        const reply = await pending;
        if (reply.status === 200) {
          counts[200]++;
          etag = reply.etag;
          if (++changed === WATCHERS) process.stdout.write(`woken ${Date.now()}\n`);
        } else if (reply.status === 304) counts[304]++;
        else {
          counts.other++;
          await sleep(1000);
        }
        if (mode === 'refreshing') {
          await post('/api/v1/vault/tokens/revoke', token, undefined);
          counts.revokes++;
        }
      } catch {
        counts.errors++;
        await sleep(1000 + Math.random() * 1000);
      }
    }
  };
  process.on('SIGUSR2', () => process.stdout.write(`counts ${JSON.stringify(counts)}\n`));
  process.on('SIGTERM', () => {
    process.stdout.write(`counts ${JSON.stringify(counts)}\n`);
    process.exit(0);
  });
  for (let i = 0; i < WATCHERS; i++) {
    watcher(i).catch((error) => {
      process.stderr.write(`watcher ${i}: ${error.message}\n`);
      process.exit(1);
    });
  }
  await new Promise(() => undefined);
}

const root = mkdtempSync(path.join(tmpdir(), 'rws-bench-watch-'));
const children = [];
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMiB(pid) {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match[1]) / 1024;
}

/** The server's CPU share and memory over SECONDS of wall time. */
async function window(pid) {
  const samples = [];
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  for (let i = 0; i < SECONDS; i++) {
    await sleep(1000);
    samples.push(rssMiB(pid));
  }
  const wall = (performance.now() - started) / 1000;
  return { cpu: (cpuSeconds(pid) - cpuBefore) / wall, rssMean: samples.reduce((a, b) => a + b, 0) / samples.length, rssPeak: Math.max(...samples) };
}

/** Starts a process and resolves when its stdout matches `pattern`; `lines` sees every later line. */
function start(command, args, pattern, env = {}, lines = () => undefined) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  children.push(child);
  let out = '';
  let matched = false;
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      let newline;
      while ((newline = out.indexOf('\n')) !== -1) {
        const line = out.slice(0, newline);
        out = out.slice(newline + 1);
        const match = pattern.exec(line);
        if (!matched && match) {
          matched = true;
          resolve({ child, match });
        } else lines(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`${path.basename(command)} exited ${code}`)));
  });
}

const store = path.join(root, 'store');
let env = {};
let postgres;
if (flags.state === 'postgres') {
  const { startThrowawayPostgres } = await import('../examples/replicas/throwaway-postgres.mjs');
  postgres = await startThrowawayPostgres(root);
  env = { RWS_DATABASE_URL: postgres.url };
}
const cli = (args, input = '') => execFileSync(BIN, [...args, '--store', store], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
cli(['init']);
cli(['secret', 'import', 'bench', '--format', 'json'], JSON.stringify({ BENCH_SECRET: 'bench-value-0123456789', BENCH_URL: 'https://bench.example', BENCH_USER: 'bench' }));
const apiKey = /^key: (\S+)$/m.exec(cli(['apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'BENCH_*']))[1];
const { child: server, match } = await start(process.execPath, [BIN, 'serve', '--store', store, '--port', '0'], /listening on (\S+)/, env);
const url = match[1];
const pid = server.pid;

// Warm-up: every path the watchers take, so that the baseline has loaded the same code.
for (let i = 0; i < 20; i++) {
  const minted = await fetch(`${url}/api/v1/vault/tokens/generate`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject: 'warm', environment: 'bench', key_pattern: 'BENCH_*' }) });
  const { token } = await minted.json();
  const first = await fetch(`${url}/api/v1/vault/secrets/batch`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: BODY });
  await first.text();
  const held = await fetch(`${url}/api/v1/vault/secrets/batch?wait=1`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'if-none-match': first.headers.get('etag') }, body: BODY });
  await held.text();
  await fetch(`${url}/api/v1/vault/tokens/revoke`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
}
await sleep(3000);

const state = flags.state === 'postgres' ? 'PostgreSQL' : 'SQLite';
process.stderr.write(`${state}: measuring the idle server for ${SECONDS} s\n`);
const idle = await window(pid);

/** The watchers' process; `counts()` asks it for its counts so far, `stop()` for its last. */
async function startWatchers(mode, onLine = () => undefined) {
  let asked;
  const { child } = await start(process.execPath, [SELF, '--watch', url, '--mode', mode, '--watchers', String(WATCHERS), '--wait', String(WAIT)], /^ready$/, { BENCH_API_KEY: apiKey }, (line) => {
    const counts = /^counts (.*)$/.exec(line);
    if (counts && asked) asked(JSON.parse(counts[1]));
    else onLine(line);
  });
  const ask = (signal) =>
    new Promise((resolve) => {
      asked = resolve;
      child.kill(signal);
    });
  return { counts: () => ask('SIGUSR2'), stop: () => ask('SIGTERM') };
}

let wokenAt;
let onWoken = () => undefined;
const held = await startWatchers('held', (line) => {
  const woken = /^woken (\d+)$/.exec(line);
  if (woken) {
    wokenAt = Number(woken[1]);
    onWoken();
  }
});
await sleep(2000);
process.stderr.write(`${state}: ${WATCHERS} watchers held; measuring for ${SECONDS} s\n`);
const heldBefore = await held.counts();
const heldFigures = await window(pid);
const heldAnswers = diff(heldBefore, await held.counts());
const allWoken = new Promise((resolve) => (onWoken = resolve));
const setStarted = Date.now();
cli(['secret', 'set', 'bench', 'BENCH_URL'], 'https://bench.example/rotated');
const setDone = Date.now();
await Promise.race([allWoken, sleep(30_000)]);
const heldCounts = await held.stop();

await sleep(2000);
const refreshing = await startWatchers('refreshing');
await sleep(2000);
process.stderr.write(`${state}: ${WATCHERS} watchers refreshing (wait=${WAIT}); measuring for ${SECONDS} s\n`);
const refreshingBefore = await refreshing.counts();
const refreshingFigures = await window(pid);
const refreshingAnswers = diff(refreshingBefore, await refreshing.counts());
const refreshingCounts = await refreshing.stop();

function diff(before, after) {
  return Object.fromEntries(Object.keys(after).map((key) => [key, after[key] - (before[key] ?? 0)]));
}

const row = (name, figures, extra) =>
  `| ${name} | ${figures.rssMean.toFixed(1)} MiB (peak ${figures.rssPeak.toFixed(1)}) | ${(figures.cpu * 100).toFixed(2)}% | ${extra} |`;
console.log(`\nsecrets-server (${state} state), ${WATCHERS} watchers, ${SECONDS} s windows, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
console.log('| server | RSS | CPU (of one core) | requests |');
console.log('|---|---|---|---|');
console.log(row('no watchers', idle, 'none'));
const perSecond = (count) => (count / SECONDS).toFixed(1);
console.log(row(`${WATCHERS} held long-polls (wait=60)`, heldFigures, `${perSecond(heldAnswers[304] + heldAnswers[200] + heldAnswers.other)} answers/s`));
console.log(row(`${WATCHERS} refreshing (mint, wait=${WAIT}, revoke)`, refreshingFigures, `${perSecond(refreshingAnswers.mints)} refreshes/s (mint + batch + revoke)`));
console.log(`\nper held watcher: ${(((heldFigures.rssMean - idle.rssMean) * 1024) / WATCHERS).toFixed(1)} KiB of RSS, ${(((heldFigures.cpu - idle.cpu) * 1e6) / WATCHERS).toFixed(1)} µs of CPU per second`);
if (wokenAt !== undefined) {
  console.log(`one secret set (the command took ${setDone - setStarted} ms) woke all ${WATCHERS}: the last had its new values ${wokenAt - setDone} ms after the command returned`);
} else {
  console.log(`one secret set did not wake all ${WATCHERS} within 30 s`);
}
server.kill('SIGTERM');
await new Promise((resolve) => server.once('exit', resolve));
await postgres?.stop();
const troubles = heldCounts.other + heldCounts.errors + refreshingCounts.other + refreshingCounts.errors;
if (troubles > 0) console.log(`${troubles} requests failed or were refused (counted: ${JSON.stringify({ held: heldCounts, refreshing: refreshingCounts })})`);
process.exit(wokenAt === undefined ? 1 : 0);
