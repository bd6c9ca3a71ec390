#!/usr/bin/env node
// Start-up cost of a local run, paid by every cron job: median wall time of
//   run-with-secrets --env-file F -- node -e 0
// beside bare `node -e 0` and the peers dotenv-cli and dotenvx on the same file, in one run,
// interleaved so machine noise hits every command alike. Prints a table; asserts nothing.
// Also a copy of the package without the CLI's V8 code caches (dist/**/*.cache, made by a local
// build, never shipped): what a registry install runs.
// Usage: npm run build && node bench/startup.mjs [runs=40] [keys=20]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { uncachedCopy } from './lib/vault-bench.mjs';

const root = resolve(import.meta.dirname, '..');
const runs = Number(process.argv[2] ?? 40);
const keys = Number(process.argv[3] ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'rws-bench-'));
const envFile = join(dir, '.env');
writeFileSync(envFile, Array.from({ length: keys }, (_, i) => `KEY_${i}=value-${i}-${'x'.repeat(32)}`).join('\n') + '\n', { mode: 0o600 });

const bin = (name) => join(root, 'node_modules/.bin', name);
const uncached = uncachedCopy(join(dir, 'package'));
const commands = [
  { name: 'node -e 0 (baseline)', argv: ['node', '-e', '0'] },
  { name: 'run-with-secrets (env)', argv: [join(root, 'bin/run-with-secrets.js'), '--env-file', envFile, '--', 'node', '-e', '0'] },
  { name: 'run-with-secrets (fd)', argv: [join(root, 'bin/run-with-secrets.js'), '--env-file', envFile, '--inject-as', 'fd', '--', 'node', '-e', '0'] },
  { name: 'rws (env, no code cache)', argv: [uncached, '--env-file', envFile, '--', 'node', '-e', '0'] },
  // dotenv-cli 11 took a subcommand: `dotenv run -f FILE -- cmd` (its -e form exits 1 with usage).
  { name: 'dotenv-cli', argv: [bin('dotenv'), 'run', '-q', '-f', envFile, '--', 'node', '-e', '0'] },
  { name: 'dotenvx run', argv: [bin('dotenvx'), 'run', '-q', '-f', envFile, '--', 'node', '-e', '0'] },
];

const env = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8' };
const samples = new Map(commands.map((command) => [command.name, []]));
const failures = new Map();
for (let round = 0; round < runs + 2; round++) {
  for (const command of commands) {
    const started = process.hrtime.bigint();
    const result = spawnSync(command.argv[0], command.argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
    if (result.status !== 0) failures.set(command.name, `${result.error?.code ?? `exit ${result.status}`} ${String(result.stderr).trim().slice(0, 120)}`);
    else if (round >= 2) samples.get(command.name).push(elapsed); // two warm-up rounds
  }
}
rmSync(dir, { recursive: true, force: true });

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const rows = commands.map(({ name }) => {
  const values = samples.get(name);
  return { name, median: values.length ? quantile(values, 0.5) : NaN, p90: values.length ? quantile(values, 0.9) : NaN };
});
const baseline = rows[0].median;
const peers = rows.filter((row) => row.name === 'dotenv-cli' || row.name === 'dotenvx run').filter((row) => Number.isFinite(row.median));
const fastestPeer = peers.reduce((best, row) => (row.median < best.median ? row : best), peers[0] ?? { median: NaN, name: '-' });

console.log(`start-up, ${runs} runs each, ${keys} keys, node ${process.version}`);
console.log('command                    median ms   p90 ms   over node   vs fastest peer');
for (const row of rows) {
  const vsPeer = Number.isFinite(fastestPeer.median) ? `${(row.median / fastestPeer.median).toFixed(2)}x` : '-';
  console.log(`${row.name.padEnd(26)} ${row.median.toFixed(1).padStart(9)} ${row.p90.toFixed(1).padStart(8)} ${`+${(row.median - baseline).toFixed(1)}`.padStart(11)}   ${vsPeer.padStart(8)}`);
}
for (const [name, reason] of failures) console.log(`FAILED ${name}: ${reason}`);
const ours = rows[1];
if (Number.isFinite(fastestPeer.median)) {
  const ratio = ours.median / fastestPeer.median;
  console.log(`target: run-with-secrets (env) within 1.20x of the fastest peer (${fastestPeer.name}): ${ratio.toFixed(2)}x ${ratio <= 1.2 ? 'MET' : 'NOT MET'}`);
}
