#!/usr/bin/env node
// Does a refusal's timing tell an attacker part of a valid API key? Measures the server's own
// key check (authenticateApiKey, on a real state database with 200 keys) for two kinds of wrong
// key, interleaved call by call so that drift in the machine's load hits both alike:
//   - "known prefix": the first 8 hex characters of a real key, the rest random;
//   - "unknown prefix": all random.
// Prints the median and the trimmed mean (middle 80 %) of each, in microseconds, and their
// difference, per round and over all rounds. A difference near zero, of either sign and smaller
// than the spread between rounds, means the answer's timing says nothing about a prefix.
//
// Usage: npm run build && node bench/key-timing.mjs [--state all|sqlite|postgres] [--rounds 5] [--calls 4000]
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({
  options: {
    state: { type: 'string', default: 'all' },
    rounds: { type: 'string', default: '5' },
    calls: { type: 'string', default: '4000' },
    keys: { type: 'string', default: '200' },
  },
});
const ROUNDS = Number(flags.rounds);
const CALLS = Number(flags.calls);

const { openState } = await import('../dist/server/state/open-state.js');
const { storePaths } = await import('../dist/server/store/layout.js');
const { authenticateApiKey, newApiKey } = await import('../dist/server/auth/api-keys.js');
const { localChange } = await import('../dist/server/audit/record.js');

const root = mkdtempSync(path.join(tmpdir(), 'rws-key-timing-'));
let postgres;
process.on('exit', () => rmSync(root, { recursive: true, force: true }));

async function measure(name, state) {
  const pepper = randomBytes(32);
  const now = new Date();
  const grant = { name: 'bench', environments: ['bench'], keyPatterns: ['*'], maxTtlMinutes: null, expiresAt: null, admin: false };
  let known;
  for (let i = 0; i < Number(flags.keys); i++) {
    const { record, key } = newApiKey(pepper, grant, now);
    await state.addApiKey(record, localChange('apikey.create', record.id, now));
    known ??= key;
  }
  // The valid key is accepted: the check under test is the real one.
  await authenticateApiKey(state, pepper, known, now);
  const knownPrefix = known.slice(0, 'rws_sk_'.length + 8);
  const wrongWithKnownPrefix = () => `${knownPrefix}${randomBytes(12).toString('hex')}`;
  const wrongWithUnknownPrefix = () => `rws_sk_${randomBytes(16).toString('hex')}`;
  const time = async (presented) => {
    const started = process.hrtime.bigint();
    try {
      await authenticateApiKey(state, pepper, presented, now);
      throw new Error('a wrong key was accepted');
    } catch (error) {
      if (error.code !== 'RWS_AUTH_FAILED' && error.status !== 401) throw error;
    }
    return Number(process.hrtime.bigint() - started) / 1000;
  };
  for (let i = 0; i < 1000; i++) {
    await time(wrongWithKnownPrefix());
    await time(wrongWithUnknownPrefix());
  }
  console.log(`\n${name}: ${Number(flags.keys)} keys, ${CALLS} calls of each kind per round, µs per key check`);
  console.log('round   known prefix (median / trimmed)   unknown prefix (median / trimmed)   difference (median / trimmed)');
  const all = { known: [], unknown: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    const known = [];
    const unknown = [];
    for (let i = 0; i < CALLS; i++) {
      // Alternate which goes first, so neither always follows the other.
      if (i % 2 === 0) {
        known.push(await time(wrongWithKnownPrefix()));
        unknown.push(await time(wrongWithUnknownPrefix()));
      } else {
        unknown.push(await time(wrongWithUnknownPrefix()));
        known.push(await time(wrongWithKnownPrefix()));
      }
    }
    all.known.push(...known);
    all.unknown.push(...unknown);
    console.log(row(String(round), known, unknown));
  }
  console.log(row('all', all.known, all.unknown));
}

function row(label, known, unknown) {
  const k = [median(known), trimmed(known)];
  const u = [median(unknown), trimmed(unknown)];
  const f = (n) => n.toFixed(1).padStart(7);
  return `${label.padEnd(6)}  ${f(k[0])} / ${f(k[1])}                 ${f(u[0])} / ${f(u[1])}                   ${f(k[0] - u[0])} / ${f(k[1] - u[1])}`;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function trimmed(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const cut = Math.floor(sorted.length / 10);
  const middle = sorted.slice(cut, sorted.length - cut);
  return middle.reduce((sum, value) => sum + value, 0) / middle.length;
}

try {
  if (flags.state === 'all' || flags.state === 'sqlite') {
    mkdirSync(path.join(root, 'sqlite'), { mode: 0o700 });
    const state = await openState(storePaths(path.join(root, 'sqlite')), undefined);
    try {
      await measure('SQLite', state);
    } finally {
      await state.close();
    }
  }
  if (flags.state === 'all' || flags.state === 'postgres') {
    const { startThrowawayPostgres } = await import('../examples/replicas/throwaway-postgres.mjs');
    postgres = await startThrowawayPostgres(root);
    // As a replica runs it: with the notified cache (valid keys cached, wrong ones never).
    mkdirSync(path.join(root, 'pg'), { mode: 0o700 });
    const state = await openState(storePaths(path.join(root, 'pg')), postgres.url, { cache: true });
    try {
      await measure('PostgreSQL (one replica, key cache on)', state);
    } finally {
      await state.close();
    }
  }
} finally {
  await postgres?.stop();
}
