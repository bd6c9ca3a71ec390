// bench/watch: the client's half of issue 12's numbers (the server's cost of 1,000 idle watchers
// is bench/watch-server.mjs). The time from `secrets-server secret set` to the new child being up
// under `run-with-secrets --watch`, over 20 edits, median and p90: with the defaults (debounce 2 s,
// long-poll), --debounce 1s, --debounce 0, and for a local --sops-file edited by `secret set`.
// Targets (issue 12): median under 1.5 s with the defaults, under 0.5 s with --debounce 0. The
// default trailing debounce waits 2 s of quiet after an edit, so the first target cannot be met
// with the defaults; --debounce 1s is measured too, as the setting that does.
// The edit's moment is the new file's modification time (written just before it is renamed into
// place); the child's is the time it writes its first line. Run: npm run bench:watch
import { execFile, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const WRAPPER = join(root, 'bin/run-with-secrets.js');
const SERVER = join(root, 'bin/secrets-server.js');
const EDITS = Number(process.env.BENCH_EDITS ?? 20);
// Quiet output: each restart's notice line would bury the table.
const QUIET = ['-q'];
const run = promisify(execFile);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const work = mkdtempSync(join(tmpdir(), 'rws-bench-watch-'));
const store = join(work, 'store');
const env = { ...process.env, VANTA_SOPS_FILES_PATH: '' };

async function server(...args) {
  return run(SERVER, [...args, '--store', store], { env });
}

async function setSecret(value) {
  const child = spawn(SERVER, ['secret', 'set', 'bench', 'APP_VALUE', '--store', store], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(value);
  await new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`secret set exited ${code}`)))));
  return statSync(join(store, 'bench.enc.yaml')).mtimeMs;
}

function startServer() {
  const child = spawn(SERVER, ['serve', '--store', store, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /listening on (\S+)\n/.exec(out);
      if (match) resolve({ url: match[1], child });
    });
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
}

const ups = (record) => {
  try {
    return readFileSync(record, 'utf8').trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

async function waitForUps(record, count, wrapper, timeoutMs = 60_000) {
  const start = Date.now();
  while (ups(record).length < count) {
    if (wrapper.exitCode !== null || wrapper.signalCode !== null) throw new Error(`the wrapper ended (${wrapper.exitCode ?? wrapper.signalCode})`);
    if (Date.now() - start > timeoutMs) throw new Error(`no child #${count} after ${timeoutMs} ms`);
    await sleep(5);
  }
  return ups(record)[count - 1];
}

/** One mode: a wrapper, 20 edits, the latency of each. */
async function measure(name, args, extraEnv, settleMs) {
  const record = join(work, `${name.replace(/\W+/g, '-')}.log`);
  writeFileSync(record, '');
  const child = `require('fs').appendFileSync(process.env.BENCH_RECORD, Date.now() + '\\n'); setInterval(() => {}, 1e9)`;
  const wrapper = spawn(WRAPPER, [...QUIET, ...args, '--keep-env', 'BENCH_RECORD', '--', 'sh', '-c', `exec node -e "${child}"`], { env: { PATH: process.env.PATH, HOME: process.env.HOME, BENCH_RECORD: record, ...extraEnv }, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForUps(record, 1, wrapper);
  await sleep(500);
  const latencies = [];
  for (let edit = 1; edit <= EDITS; edit++) {
    const editedAt = await setSecret(`value-${name}-${edit}-${Date.now()}`);
    const upAt = await waitForUps(record, edit + 1, wrapper);
    latencies.push(upAt - editedAt);
    // Let the debounce end and the next long-poll be held before the next edit.
    await sleep(settleMs);
  }
  wrapper.kill('SIGTERM');
  await new Promise((resolve) => wrapper.once('exit', resolve));
  return latencies;
}

function stats(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { median: (sorted[Math.floor((sorted.length - 1) / 2)] + sorted[Math.ceil((sorted.length - 1) / 2)]) / 2, p90: at(0.9), min: sorted[0], max: sorted.at(-1) };
}

try {
  await server('init');
  const importer = spawn(SERVER, ['secret', 'import', 'bench', '--format', 'json', '--store', store], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  importer.stdin.end(JSON.stringify({ APP_VALUE: 'initial', APP_OTHER: 'other' }));
  await new Promise((resolve) => importer.once('exit', resolve));
  const created = await server('apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'APP_*');
  const apiKey = /^key: (\S+)$/m.exec(created.stdout)[1];
  const { url, child: serverProcess } = await startServer();
  const vault = { RWS_VAULT_URL: url, RWS_API_KEY: apiKey };
  const local = { SOPS_AGE_KEY_FILE: join(store, 'age-identity.txt') };
  const sopsFile = join(store, 'bench.enc.yaml');

  const modes = [
    ['vault, defaults (debounce 2s, long-poll)', ['-e', 'bench', '-k', 'APP_*', '--watch'], vault, 2500, 1500],
    ['vault, --debounce 1s', ['-e', 'bench', '-k', 'APP_*', '--watch', '--debounce', '1s'], vault, 1500, 1500],
    ['vault, --debounce 0', ['-e', 'bench', '-k', 'APP_*', '--watch', '--debounce', '0'], vault, 500, 500],
    ['local --sops-file, defaults', ['--sops-file', sopsFile, '--watch'], local, 2500, 1500],
    ['local --sops-file, --debounce 0', ['--sops-file', sopsFile, '--watch', '--debounce', '0'], local, 500, 500],
  ];
  const rows = [];
  for (const [name, args, extraEnv, settle, target] of modes) {
    const latencies = await measure(name, args, extraEnv, settle);
    const s = stats(latencies);
    rows.push({ mode: name, edits: latencies.length, 'median ms': Math.round(s.median), 'p90 ms': Math.round(s.p90), 'min ms': Math.round(s.min), 'max ms': Math.round(s.max), target: `< ${target} ms median`, met: s.median < target ? 'yes' : 'NO' });
    appendFileSync(join(work, 'latencies.json'), `${JSON.stringify({ name, latencies })}\n`);
  }
  serverProcess.kill('SIGTERM');
  console.log(`bench/watch: secret set → new child up, ${EDITS} edits per mode (node ${process.version})`);
  console.table(rows);
} finally {
  rmSync(work, { recursive: true, force: true });
}
