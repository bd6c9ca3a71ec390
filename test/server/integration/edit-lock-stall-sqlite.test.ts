// The same stall with SQLite: the lock `sops:ENV` is the write lock of state-locks.sops-ENV.db,
// a file lock that a stopped holder keeps until it is continued or ends (no one can take a file
// lock from a process). So an edit that waits its 10 s out must say who holds the lock and that it is
// stopped, where it said "the state database could not be written (SQLITE_BUSY)" and sent the
// operator to check the database. The holder, continued, finishes its edit: it never lost the lock.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { heldEdit, pendingVersions, straceWorks } from '../helpers/held-edit.js';
import { call, cli, cliOk, makeApiKey, makeStore, startServer, type TestStore } from '../helpers/server.js';


let store: TestStore;

beforeAll(async () => {
  store = await makeStore();
  await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: 'kept-value' }) });
}, 60_000);

afterAll(async () => {
  await store?.cleanup();
});

const names = async () => (await cliOk(['secret', 'list', 'production', '--store', store.dir])).trim().split('\n');
const temps = () => pendingVersions(store.dir);

it('an edit that waits out a stopped holder names it as stopped and says how to continue it; the holder, continued, finishes', async (context) => {
  if (!(await straceWorks())) return context.skip();
  // strace holds each fsync 3 s: the holder, which took the lock before writing its new version,
  // is stopped while that file exists (named with its pid), before it renames it into place.
  const { holder, pid } = await heldEdit(store.dir, 'production', 'HOLDER', { input: 'holder-value', delayMs: 3_000 });
  let stopped = false;
  try {
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
    if (stopped) process.kill(pid, 'SIGCONT');
    await holder;
  }
  expect(await names()).toEqual(['KEPT', 'HOLDER']);
  expect(temps()).toEqual([]);
}, 60_000);

it('an edit that waits out a running holder names it, not as stopped, and says to let it finish', async (context) => {
  if (!(await straceWorks())) return context.skip();
  // A holder at work: strace holds its fsync for 13 s, longer than the 10 s the other edit waits.
  const { holder, pid } = await heldEdit(store.dir, 'production', 'SLOW', { input: 'slow-value', delayMs: 13_000, once: true });
  try {
    expect(pid).toBeGreaterThan(0);
    const other = await cli(['secret', 'set', 'production', 'WAITED', '--store', store.dir], { input: 'waited-value' });
    expect(other.exitCode).toBe(1);
    expect(other.stderr).toMatch(new RegExp(`the lock sops:production is held by process ${pid} \\([^,)]+\\); waited 10 s, nothing was changed \\(hint: let it finish \\(a large import takes a while\\) and try again; if it never ends, stop it\\)`));
  } finally {
    await holder;
  }
  expect(await names()).toEqual(['KEPT', 'HOLDER', 'SLOW']);
}, 60_000);

it('a server told to stop while admin edits wait for the lock another process holds exits within its grace', async () => {
  // The admin API runs an environment's edits one at a time, and each waited its whole 10 s for
  // the lock even once the server was closing: three queued edits kept a stopping server for 30 s.
  const before = await names();
  const server = await startServer(store);
  const { key } = await makeApiKey(store, [], [], ['--admin']);
  const holder = new Database(join(store.dir, 'state-locks.sops-production.db'));
  try {
    holder.exec('BEGIN EXCLUSIVE');
    const puts = [1, 2, 3].map((i) => call(`${server.url}/api/v1/admin/environments/production/secrets/QUEUED_${i}`, { method: 'PUT', auth: key, json: { value: `queued-${i}` } }).catch(() => undefined));
    // The first edit is waiting by now (its wait is a loop of tries: nothing to see it by).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const started = Date.now();
    const exitCode = await server.stop('SIGTERM');
    const took = Date.now() - started;
    expect(exitCode).toBe(0);
    // The in-flight requests' 5 s of grace, then the close.
    expect(took).toBeLessThan(9_000);
    console.log(`the server stopped ${took} ms after SIGTERM with three edits queued behind a held lock`);
    await Promise.all(puts);
    expect(server.stderr()).not.toContain('RWS_INTERNAL');
  } finally {
    if (holder.inTransaction) holder.exec('ROLLBACK');
    holder.close();
    await server.stop('SIGKILL');
  }
  expect(await names()).toEqual(before);
}, 90_000);
