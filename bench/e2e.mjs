#!/usr/bin/env node
// A full vault run, measured as a cron job pays it: median wall time of
//   run-with-secrets -e bench -k 'SERVICE_B_*' -- node -e 0
// against a local secrets-server for 10, 100 and 1,000 matching keys, beside the local
// `--env-file` run with the same keys, interleaved in one run. The vault run is measured twice:
// as built here (loaded through the build's code caches) and from a copy of the package without
// them, as an install from the registry runs it. Prints a table; asserts nothing.
// Usage: npm run build && node bench/e2e.mjs [runs=15]
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median, rws, time, uncachedCopy, vaultBench } from './lib/vault-bench.mjs';

const runs = Number(process.argv[2] ?? 15);
const work = mkdtempSync(join(tmpdir(), 'rws-bench-e2e-'));
const baseEnv = { PATH: process.env.PATH, HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8' };
const { makeStore, startServer } = vaultBench(baseEnv);
// The package as installed from the registry: the same build, no code cache.
const rwsNoCache = uncachedCopy(join(work, 'installed'));

const rows = [];
try {
  for (const count of [10, 100, 1000]) {
    const dir = join(work, String(count));
    const { store, values, key } = makeStore(dir, count);
    const envFile = join(dir, '.env');
    writeFileSync(envFile, Object.entries(values).map(([name, value]) => `${name}=${value}`).join('\n') + '\n');
    chmodSync(envFile, 0o600);
    const running = await startServer(store);
    const vault = { argv: [rws, '-e', 'bench', '-k', 'SERVICE_B_*', '--', 'node', '-e', '0'], env: { ...baseEnv, RWS_VAULT_URL: running.url, RWS_API_KEY: key } };
    const vaultNoCache = { argv: [rwsNoCache, ...vault.argv.slice(1)], env: vault.env };
    const local = { argv: [rws, '--env-file', envFile, '-k', 'SERVICE_B_*', '--', 'node', '-e', '0'], env: baseEnv };
    const samples = { vault: [], noCache: [], local: [] };
    for (let round = 0; round < runs + 2; round++) {
      const v = time(vault.argv, vault.env);
      const n = time(vaultNoCache.argv, vaultNoCache.env);
      const l = time(local.argv, local.env);
      if (round >= 2) {
        samples.vault.push(v);
        samples.noCache.push(n);
        samples.local.push(l);
      }
    }
    await running.stop();
    rows.push({ count, vault: median(samples.vault), noCache: median(samples.noCache), local: median(samples.local) });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(`full run (wrapper + node -e 0), median of ${runs}, node ${process.version}`);
console.log('keys    vault ms   local --env-file ms   vault/local   without code cache ms   /local');
for (const row of rows) {
  console.log(`${String(row.count).padStart(5)} ${row.vault.toFixed(1).padStart(10)} ${row.local.toFixed(1).padStart(21)} ${(row.vault / row.local).toFixed(2).padStart(12)}x ${row.noCache.toFixed(1).padStart(23)} ${(row.noCache / row.local).toFixed(2).padStart(7)}x`);
}
const at100 = rows.find((row) => row.count === 100);
const growth = rows[rows.length - 1].vault - rows[0].vault;
console.log(`target: vault within 1.5x of local at 100 keys: ${(at100.vault / at100.local).toFixed(2)}x ${at100.vault / at100.local <= 1.5 ? 'MET' : 'NOT MET'}`);
console.log(`target: vault grows by < 100 ms from 10 to 1,000 keys: ${growth.toFixed(1)} ms ${growth < 100 ? 'MET' : 'NOT MET'}`);
