#!/usr/bin/env node
// What --fallback costs a cron job, and what --offline saves: median wall time of
//   run-with-secrets -e bench -k 'SERVICE_B_*' [--fallback | --offline] -- node -e 0
// against a local secrets-server for 10, 100 and 1,000 matching keys, interleaved in one run.
// The baseline is the plain vault run; --fallback adds HKDF, AES-GCM and the temp-file-and-rename
// write of the copy, measured with nothing queued and again when it also reports one offline use
// (one more request, audited); --offline reads and opens the copy and queues one use. Prints a
// table; asserts nothing. Usage: npm run build && node bench/fallback.mjs [runs=15]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, rws, time, vaultBench } from './lib/vault-bench.mjs';

const runs = Number(process.argv[2] ?? 15);
const work = mkdtempSync(join(tmpdir(), 'rws-bench-fallback-'));
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8', XDG_STATE_HOME: join(work, 'state') };
const { makeStore, startServer } = vaultBench(baseEnv);

const rows = [];
try {
  for (const count of [10, 100, 1000]) {
    const { store, key } = makeStore(join(work, String(count)), count);
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
