// The same stall with SQLite: the lock `sops:ENV` is the write lock of state-locks.db, a file
// lock that a stopped holder keeps until it is continued or ends (no one can take a file lock
// from a process). So an edit that waits its 10 s out must say who holds the lock and that it is
// stopped, where it said "the state database could not be written (SQLITE_BUSY)" and sent the
// operator to check the database. The holder, continued, finishes its edit: it never lost the lock.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, cliOk, makeStore, type TestStore, until } from '../helpers/server.js';

const BIN = fileURLToPath(new URL('../../../bin/secrets-server.js', import.meta.url));

let store: TestStore;

beforeAll(async () => {
  store = await makeStore();
  await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: 'kept-value' }) });
}, 60_000);

afterAll(async () => {
  await store?.cleanup();
});

const names = async () => (await cliOk(['secret', 'list', 'production', '--store', store.dir])).trim().split('\n');
const temps = () => readdirSync(store.dir).filter((file) => file.endsWith('.tmp'));

it('an edit that waits out a stopped holder names it as stopped and says how to continue it; the holder, continued, finishes', async (context) => {
  if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
  // strace holds each fsync 3 s: the holder, which took the lock before writing its new version,
  // is stopped while that file exists (named with its pid), before it renames it into place.
  const holder = execa('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fsync', '-e', 'inject=fsync:delay_enter=3000000', BIN, 'secret', 'set', 'production', 'HOLDER', '--store', store.dir], {
    input: 'holder-value',
    reject: false,
  });
  let pid: number | undefined;
  let stopped = false;
  try {
    await until(async () => temps().length > 0 || holder.exitCode !== null, 20_000);
    pid = Number(/\.production\.enc\.yaml\.(\d+)\./.exec(temps()[0] ?? '')?.[1]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    stopped = true;
    const other = await cli(['secret', 'set', 'production', 'OTHER', '--store', store.dir], { input: 'other-value' });
    expect(other.exitCode).toBe(1);
    const lines = other.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`error RWS_STATE_UNAVAILABLE: the lock sops:production is held by process ${pid} \\([^,)]+, stopped\\); waited 10 s, nothing was changed`));
    expect(lines[0]).toContain(`(hint: a stopped process keeps the lock until it is continued or ends: continue it (kill -CONT ${pid}) or end it, then try again)`);
    expect(lines[0]).not.toContain('SQLITE_BUSY');
    process.kill(pid, 'SIGCONT');
    stopped = false;
    const resumed = await holder;
    expect(resumed.exitCode, resumed.stderr).toBe(0);
  } finally {
    if (stopped && pid !== undefined) process.kill(pid, 'SIGCONT');
    await holder;
  }
  expect(await names()).toEqual(['KEPT', 'HOLDER']);
  expect(temps()).toEqual([]);
}, 60_000);

it('an edit that waits out a running holder names it, not as stopped, and says to let it finish', async () => {
  // A holder at work: strace holds its fsync for 13 s, longer than the 10 s the other edit waits.
  const holder = execa('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fsync', '-e', 'inject=fsync:delay_enter=13000000:when=1', BIN, 'secret', 'set', 'production', 'SLOW', '--store', store.dir], {
    input: 'slow-value',
    reject: false,
  });
  try {
    await until(async () => temps().length > 0 || holder.exitCode !== null, 20_000);
    const pid = Number(/\.production\.enc\.yaml\.(\d+)\./.exec(temps()[0] ?? '')?.[1]);
    expect(pid).toBeGreaterThan(0);
    const other = await cli(['secret', 'set', 'production', 'WAITED', '--store', store.dir], { input: 'waited-value' });
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toMatch(new RegExp(`the lock sops:production is held by process ${pid} \\([^,)]+\\); waited 10 s, nothing was changed \\(hint: let it finish \\(a large import takes a while\\) and try again; if it never ends, stop it\\)`));
  } finally {
    await holder;
  }
  expect(await names()).toEqual(['KEPT', 'HOLDER', 'SLOW']);
}, 60_000);
