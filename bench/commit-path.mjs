#!/usr/bin/env node
// The SQLite commit path alone, as a batch of reads meets it: each turn, N concurrent uses of one
// unlimited token, each with its audit row, committed by the state store's group commit (one
// transaction a turn). Prints wall and CPU microseconds per use for each build given, alternating
// them, so that a change to the commit path is measured against the build before it in one run,
// apart from node:http and the load generator that bench/server.mjs measures with it.
//
// Usage: npm run build && node bench/commit-path.mjs [BUILD_ROOT ...] [--rounds 3] [--turns 12000] [--uses 27]
//        BUILD_ROOT: a checkout with dist/ and bin/ built (default: this one), e.g. a worktree of
//        the commit before a change.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    turns: { type: 'string', default: '12000' },
    uses: { type: 'string', default: '27' },
    // Internal: measure one build and print one JSON line.
    one: { type: 'string' },
  },
});
const TURNS = Number(flags.turns);
const USES = Number(flags.uses);

if (flags.one !== undefined) {
  process.stdout.write(`${JSON.stringify(await measure(flags.one))}\n`);
  process.exit(0);
}

const roots = positionals.length > 0 ? positionals.map((root) => path.resolve(root)) : [fileURLToPath(new URL('..', import.meta.url))];
console.log(`${USES} concurrent uses of one unlimited token per turn, ${TURNS} turns after 2,000 unmeasured; a fresh store and process per measurement`);
const results = new Map(roots.map((root) => [root, []]));
for (let round = 0; round < Number(flags.rounds); round++) {
  for (const root of roots) {
    const result = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--one', root, '--turns', String(TURNS), '--uses', String(USES)], { encoding: 'utf8' }));
    results.get(root).push(result);
    console.log(`round ${round + 1}: ${root}: ${result.wall.toFixed(2)} µs wall, ${result.cpu.toFixed(2)} µs CPU per use`);
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const [root, runs] of results) console.log(`median ${root}: ${median(runs.map((r) => r.wall)).toFixed(2)} µs wall, ${median(runs.map((r) => r.cpu)).toFixed(2)} µs CPU per use`);

async function measure(root) {
  const bin = path.join(root, 'bin/secrets-server.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'rws-commit-bench-'));
  const store = path.join(dir, 'store');
  try {
    const cli = (args, input = '') => execFileSync(process.execPath, [bin, ...args, '--store', store], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
    cli(['init']);
    cli(['apikey', 'create', '--name', 'bench', '--environment', 'bench', '--key-pattern', 'BENCH_*', '--max-ttl', '60']);
    const { openState } = await import(path.join(root, 'dist/server/state/open-state.js'));
    const { storePaths } = await import(path.join(root, 'dist/server/store/layout.js'));
    const state = await openState(storePaths(store), undefined, { serving: true, cache: true });
    const [key] = await state.listApiKeys(new Date());
    const issued = Math.floor(Date.now() / 1000);
    const token = { jti: `bench-${issued}`, subject: 'bench', environment: 'bench', key_pattern: 'BENCH_*', issued_at: issued, expires_at: issued + 3600, usage_limit: null };
    const row = (event, status, apiKeyId) => ({ time: new Date().toISOString(), event, outcome: 'success', status, error_code: null, api_key_id: apiKeyId ?? key.id, jti: token.jti, subject: 'bench', environment: 'bench', keys: ['BENCH_SECRET'], client: '127.0.0.1', count: 1 });
    await state.commit({ effect: { kind: 'issue', token: { ...token, api_key_id: key.id } }, audit: () => row('token.generate', 201) }, new Date());
    const turn = async () => {
      const now = new Date();
      const outcomes = await Promise.all(Array.from({ length: USES }, () => state.commit({ effect: { kind: 'use', token: { ...token } }, audit: (_outcome, apiKeyId) => row('secret.read', 200, apiKeyId) }, now)));
      if (outcomes.some((outcome) => outcome !== 'ok')) throw new Error(`a use was refused: ${outcomes.find((outcome) => outcome !== 'ok')}`);
    };
    for (let i = 0; i < 2000; i++) await turn();
    const started = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    for (let i = 0; i < TURNS; i++) await turn();
    const wall = Number(process.hrtime.bigint() - started) / 1e3;
    const used = process.cpuUsage(cpu);
    await state.close();
    return { wall: wall / TURNS / USES, cpu: (used.user + used.system) / TURNS / USES };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
