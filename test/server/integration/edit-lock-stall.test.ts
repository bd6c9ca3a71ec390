// The lock `sops:ENV` that secrets file edits hold in PostgreSQL, with a holder that stalls: a
// `secret set` stopped (SIGSTOP) while it holds the lock keeps its database session open (the
// kernel answers for its socket), and before the lock's session had a bound every other edit of
// the environment failed after 5 s ("did not answer (57014)") for as long as it stayed stopped.
// Now the database ends a lock session idle for 10 s: the other edit proceeds, and the stopped
// one, continued, must find its lock gone and change nothing. A holder that is only busy keeps
// its lock, and an edit that waits its whole bound names who holds the lock.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { heldEdit, pendingVersions, straceWorks } from '../helpers/held-edit.js';
import { call, cli, cliOk, makeApiKey, makeStore, startServer, type TestStore, until } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';
import { lockKey } from '../../../src/server/state/sql/driver.js';

const DRIVER = new URL('../../../dist/server/state/postgres/postgres-driver.js', import.meta.url).href;

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let env: Record<string, string>;

beforeAll(async () => {
  store = await makeStore();
  db = await testDatabase();
  env = { RWS_DATABASE_URL: db.url };
  await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: 'kept-value' }), env });
}, 60_000);

afterAll(async () => {
  await db?.drop();
  await store?.cleanup();
});

const names = async () => (await cliOk(['secret', 'list', 'production', '--store', store.dir], { env })).trim().split('\n');
const temps = () => pendingVersions(store.dir);

async function operatorSession(application: string): Promise<pg.Client> {
  const operator = new pg.Client({ connectionString: db.url, application_name: application });
  operator.on('error', () => undefined);
  await operator.connect();
  return operator;
}

it('a holder stopped mid-edit loses the lock within 10 s: another edit then proceeds, and the holder, continued, fails and leaves the file as that edit left it', async (context) => {
  if (!(await straceWorks())) return context.skip();
  // strace holds each fsync 3 s: the holder, which took the lock before writing its new version,
  // is stopped while that file exists (named with its pid), before it renames it into place.
  const { holder, pid } = await heldEdit(store.dir, 'production', 'HOLDER', { input: 'holder-value', delayMs: 3_000, env: { VANTA_SOPS_FILES_PATH: '', ...env } });
  let stopped = false;
  try {
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    stopped = true;
    const started = Date.now();
    const other = await cli(['secret', 'set', 'production', 'OTHER', '--store', store.dir], { input: 'other-value', env });
    const waited = Date.now() - started;
    expect(other.exitCode, other.stderr).toBe(0);
    // The holder's last heartbeat was at most 1 s before it stopped; the database ends its session 10 s after that.
    expect(waited).toBeLessThan(14_000);
    console.log(`the other edit waited ${waited} ms for the stopped holder's lock`);
    process.kill(pid, 'SIGCONT');
    stopped = false;
    const resumed = await holder;
    expect(resumed.exitCode).toBe(1);
    expect(resumed.stderr).toContain('error RWS_STATE_UNAVAILABLE: ');
    expect(resumed.stderr).toContain('ended the session holding the lock sops:production');
    expect(resumed.stderr).toContain('nothing was changed');
  } finally {
    if (stopped) process.kill(pid, 'SIGCONT');
    await holder;
  }
  expect(await names()).toEqual(['KEPT', 'OTHER']);
  expect(temps()).toEqual([]);
}, 60_000);

it('a holder whose thread is busy for longer than that keeps its lock: the bound is on a stalled process, not a long edit', async () => {
  // The driver as built, in a process of its own: it takes the lock, then keeps its event loop
  // for 12 s (as a large import does while it re-encrypts), then asks whether it still holds it.
  const script = join(store.root, 'busy-holder.mjs');
  await writeFile(script, `
    const { openPostgres } = await import(${JSON.stringify(DRIVER)});
    const driver = await openPostgres(process.env.RWS_DATABASE_URL);
    const lock = await driver.lock('sops:busy');
    const until = Date.now() + 12_000;
    while (Date.now() < until);
    await lock.check();
    await lock.release();
    await driver.close();
    console.log('held throughout');
  `);
  const busy = await execa(process.execPath, [script], { env, reject: false });
  expect(busy.stderr).toBe('');
  expect(busy.stdout.trim()).toBe('held throughout');
}, 60_000);

it('an edit that waits its whole bound for a lock a live session holds fails with one line naming that session and what to do', async () => {
  // A session that answers (an operator's, or a server of an older release: a lock of the same
  // name either way) is never ended by the bound.
  const before = await names();
  const operator = await operatorSession('operator console');
  try {
    await operator.query('SELECT pg_advisory_lock($1)', [lockKey('sops:production').toString()]);
    const session = (await operator.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    const started = Date.now();
    const waiting = await cli(['secret', 'set', 'production', 'WAITED', '--store', store.dir], { input: 'waited-value', env });
    const waited = Date.now() - started;
    expect(waiting.exitCode).toBe(1);
    expect(waited).toBeGreaterThanOrEqual(15_000);
    expect(waited).toBeLessThan(25_000);
    const lines = waiting.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`error RWS_STATE_UNAVAILABLE: the lock sops:production is held by "operator console" (database session ${session}, from 127.0.0.1); waited 15 s, nothing was changed`);
    expect(lines[0]).toContain(`SELECT pg_terminate_backend(${session})`);
  } finally {
    await operator.end();
  }
  expect(await names()).toEqual(before);
}, 60_000);

it('a server told to stop while admin edits wait for a lock another session holds exits within its grace, and opens no session after its state is closed', async () => {
  // Each edit waits for the lock up to 15 s, one after another (the admin API runs an
  // environment's edits one at a time); the server's lock sessions are not its pool's, so closing the pool did not end
  // them: three queued edits kept a stopping server alive for 45 s, each opening a session of
  // its own after the server had closed its state.
  const before = await names();
  const server = await startServer(store, [], env);
  const { key } = await makeApiKey(store, [], [], ['--admin'], env);
  const operator = await operatorSession('operator console');
  const lock = lockKey('sops:production');
  const sessions = async (granted: boolean) =>
    (
      await operator.query(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $1 AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = $2 AND objid = $3",
        [granted, Number(lock >> 32n), Number(lock & 0xffffffffn)],
      )
    ).rows.length;
  const edits = () => operator.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'secrets-server edit pid %'").then((result) => result.rows[0].n as number);
  try {
    await operator.query('SELECT pg_advisory_lock($1)', [lock.toString()]);
    const puts = [1, 2, 3].map((i) => call(`${server.url}/api/v1/admin/environments/production/secrets/QUEUED_${i}`, { method: 'PUT', auth: key, json: { value: `queued-${i}` } }).catch(() => undefined));
    await until(async () => (await sessions(false)) === 1, 10_000);
    const started = Date.now();
    const exitCode = await server.stop('SIGTERM');
    const took = Date.now() - started;
    expect(exitCode).toBe(0);
    // The in-flight requests' 5 s of grace, then the close.
    expect(took).toBeLessThan(10_000);
    console.log(`the server stopped ${took} ms after SIGTERM with three edits queued behind a held lock`);
    await Promise.all(puts);
    // The database session whose wait was cut off goes by its lock_timeout at the latest (a
    // backend waiting on a lock does not notice its client is gone); none is opened after.
    await until(async () => (await edits()) === 0, 20_000);
    expect(await sessions(false)).toBe(0);
    expect(server.stderr()).not.toContain('RWS_INTERNAL');
  } finally {
    await server.stop('SIGKILL');
    await operator.end();
  }
  expect(await names()).toEqual(before);
}, 90_000);

it('an edit whose lock thread cannot be started (no thread left to the user) takes the lock on its own thread', async (context) => {
  // As root, RLIMIT_NPROC is not enforced: the holder runs as nobody then.
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
  if (!(await execa('prlimit', ['--version']).then(() => true, () => false))) return context.skip();
  if (asNobody.length > 0 && !(await execa(asNobody[0] as string, ['--version']).then(() => true, () => false))) return context.skip();
  // The driver as built, in a process limited (by prlimit, on itself) to the threads it has: a
  // new thread then fails with EAGAIN, as in a container at its pids limit. Node's Worker
  // constructor throws that (ERR_WORKER_INIT_FAILED) rather than emitting it, and the edit failed
  // with RWS_INTERNAL instead of running its lock session on its own thread.
  const dir = await mkdtemp(join(tmpdir(), 'rws-nothread-'));
  try {
    await chmod(dir, 0o755);
    const script = join(dir, 'holder.mjs');
    await writeFile(script, `
      import { execFileSync } from 'node:child_process';
      import { readdirSync } from 'node:fs';
      import { readFile } from 'node:fs/promises';
      import { Worker } from 'node:worker_threads';
      const { openPostgres } = await import(${JSON.stringify(DRIVER)});
      const driver = await openPostgres(process.env.RWS_DATABASE_URL);
      await readFile('/proc/self/stat'); // libuv's thread pool, started before the limit
      execFileSync('prlimit', ['--pid', String(process.pid), '--nproc=' + readdirSync('/proc/self/task').length]);
      try {
        new Worker('', { eval: true }).terminate();
        console.log('a thread could still be made');
      } catch (error) {
        console.log('no thread: ' + error.code);
      }
      const lock = await driver.lock('sops:nothread');
      await lock.check();
      await lock.release();
      await driver.close();
      console.log('held on this thread');
    `);
    await chmod(script, 0o644);
    const [command, ...prefix] = [...asNobody, process.execPath];
    const holder = await execa(command as string, [...prefix, script], { env, reject: false, timeout: 30_000 });
    expect(holder.stderr).toBe('');
    expect(holder.stdout.trim().split('\n')).toEqual(['no thread: ERR_WORKER_INIT_FAILED', 'held on this thread']);
    expect(holder.exitCode).toBe(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);
