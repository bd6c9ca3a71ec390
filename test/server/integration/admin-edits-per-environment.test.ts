// The admin API orders its secret edits per environment: an edit waiting for one environment's
// lock `sops:ENV` (held here by a `secret set` that strace keeps inside its edit) must not delay
// an edit of another environment, whose lock is free. The API ran every edit of the process one
// after another, so a PUT to staging waited for as long as a PUT to production waited for its
// lock (up to 10 s with SQLite, 15 s with PostgreSQL); and with SQLite the lock itself was one
// file lock for every environment. Edits of one environment still wait for each other.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldEdit, pendingVersions, straceWorks } from '../helpers/held-edit.js';
import { call, cliOk, makeApiKey, makeStore, type Reply, type RunningServer, startServer, type TestStore, until } from '../helpers/server.js';
import { BACKENDS } from '../helpers/backends.js';
import { lockKey } from '../../../src/server/state/sql/driver.js';
import { EDITS_AT_ONCE } from '../../../src/server/store/edit-turns.js';

describe.each(BACKENDS)('admin edits on $name', (backend) => {
  let store: TestStore;
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  let server: RunningServer;
  let admin: string;

  beforeAll(async () => {
    ({ env, drop } = await backend.database());
    store = await makeStore();
    for (const environment of ['production', 'staging']) {
      await cliOk(['secret', 'import', environment, '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: `kept-${environment}` }), env });
    }
    server = await startServer(store, [], env);
    admin = (await makeApiKey(store, [], [], ['--admin'], env)).key;
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await drop?.();
    await store?.cleanup();
  });

  const names = async (environment: string) => (await cliOk(['secret', 'list', environment, '--store', store.dir], { env })).trim().split('\n');
  const put = (environment: string, name: string, value: string) => call(`${server.url}/api/v1/admin/environments/${environment}/secrets/${name}`, { method: 'PUT', auth: admin, json: { value } });
  /** The holder's new version of production, there until it renames it into place: its lock is held until then. */
  const holderPending = () => pendingVersions(store.dir).some((file) => file.startsWith('.production.enc.yaml.'));

  /** Resolves once the server's edit of production waits for the lock. */
  async function editWaits(): Promise<void> {
    if (env.RWS_DATABASE_URL === undefined) {
      // SQLite's wait is a loop of tries, with nothing to see it by: the edit has long reached it.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      return;
    }
    const observer = new pg.Client({ connectionString: env.RWS_DATABASE_URL });
    await observer.connect();
    try {
      const key = lockKey('sops:production');
      await until(
        async () =>
          (
            await observer.query(
              "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = $1 AND objid = $2",
              [Number(key >> 32n), Number(key & 0xffffffffn)],
            )
          ).rows.length === 1,
        10_000,
      );
    } finally {
      await observer.end();
    }
  }

  it("answers an edit of staging while an edit of production waits for production's lock, which another process holds; the waiting edit then goes ahead", async (context) => {
    if (!(await straceWorks())) return context.skip();
    // Each of the holder's threads has its first fsync held 2.5 s (its new version's; with
    // SQLite, also its audit row's): well under the 10 s an edit waits for the lock with SQLite
    // (15 s with PostgreSQL), so the server's edit of production gets the lock after it.
    const { holder, pid } = await heldEdit(store.dir, 'production', 'HOLDER', { input: 'holder-value', delayMs: 2_500, once: true, env });
    try {
      expect(pid).toBeGreaterThan(0);
      let production: Reply | undefined;
      const waiting = put('production', 'WAITED', 'waited-value').then((reply) => (production = reply));
      await editWaits();
      const staging = await put('staging', 'PROMPT', 'prompt-value');
      // Ordered, not timed: staging was answered while the holder still held production's lock,
      // and while the edit of production still waited for it.
      const holderStillHeld = holderPending();
      expect(staging.status, staging.text).toBe(204);
      expect(production).toBeUndefined();
      expect(holderStillHeld).toBe(true);
      expect((await waiting).status, production?.text).toBe(204);
      expect((await holder).exitCode).toBe(0);
    } finally {
      await holder;
    }
    expect(await names('production')).toEqual(['KEPT', 'HOLDER', 'WAITED']);
    expect(await names('staging')).toEqual(['KEPT', 'PROMPT']);
    expect(pendingVersions(store.dir).filter((file) => !file.startsWith('.state-seen.json.'))).toEqual([]);
  }, 90_000);

  it('runs edits of one environment one after another, losing none, while edits of others go by', async () => {
    // Each PUT replaces the whole file it read under the lock: were two of production's to run
    // side by side in this process, or beside a `secret set`, one's change would be lost.
    const puts = Array.from({ length: 8 }, (_, i) => put(i % 2 === 0 ? 'production' : 'staging', `ORDERED_${i}`, `ordered-${i}`));
    const sets = [0, 1].map((i) => cliOk(['secret', 'set', 'production', `FROM_CLI_${i}`, '--store', store.dir], { input: `cli-${i}`, env }));
    expect((await Promise.all(puts)).map((reply) => reply.status)).toEqual(Array(8).fill(204));
    await Promise.all(sets);
    expect((await names('production')).filter((name) => /^(ORDERED|FROM_CLI)_/.test(name)).sort()).toEqual(['FROM_CLI_0', 'FROM_CLI_1', 'ORDERED_0', 'ORDERED_2', 'ORDERED_4', 'ORDERED_6']);
    expect((await names('staging')).filter((name) => name.startsWith('ORDERED_')).sort()).toEqual(['ORDERED_1', 'ORDERED_3', 'ORDERED_5', 'ORDERED_7']);
  }, 90_000);

  it('a server told to stop while edits of several environments wait for locks another process holds, and more wait their turn, exits within its grace', async () => {
    // Edits of one more environment than may run at once, and two more of production behind its
    // first: the stop must end the waits in progress, and the edits still in line must take no
    // lock (nor, with PostgreSQL, open a session) once the state is closed.
    const environments = ['production', 'staging', 'qa', 'dev', 'demo', 'perf'].slice(0, EDITS_AT_ONCE + 1);
    const stopping = await startServer(store, [], env);
    const held = await holdLocks(environments);
    const before = await names('production');
    try {
      const edits = [...environments, 'production', 'production'].map((environment, i) =>
        call(`${stopping.url}/api/v1/admin/environments/${environment}/secrets/QUEUED_${i}`, { method: 'PUT', auth: admin, json: { value: `queued-${i}` } }).catch(() => undefined),
      );
      await held.waiting(EDITS_AT_ONCE);
      const started = Date.now();
      expect(await stopping.stop('SIGTERM')).toBe(0);
      const took = Date.now() - started;
      // The in-flight requests' 5 s of grace, then the close.
      expect(took).toBeLessThan(10_000);
      console.log(`the server stopped ${took} ms after SIGTERM with ${edits.length} edits of ${environments.length} environments waiting`);
      await Promise.all(edits);
      await held.noneLeft();
      expect(stopping.stderr()).not.toContain('RWS_INTERNAL');
    } finally {
      await stopping.stop('SIGKILL');
      await held.release();
    }
    expect(await names('production')).toEqual(before);
  }, 90_000);

  /**
   * Holds the locks of `environments` from this process, as another editor would. `waiting(n)`
   * resolves once the server waits for exactly n of them (SQLite's waits are loops of tries, with
   * nothing to see them by: a pause); `noneLeft()` once the server has no lock session left.
   */
  async function holdLocks(environments: string[]): Promise<{ waiting(n: number): Promise<void>; noneLeft(): Promise<void>; release(): Promise<void> }> {
    if (env.RWS_DATABASE_URL === undefined) {
      const files = environments.map((environment) => new Database(join(store.dir, `state-locks.sops-${environment}.db`)));
      for (const file of files) file.exec('BEGIN EXCLUSIVE');
      return {
        waiting: () => new Promise((resolve) => setTimeout(resolve, 1_500)),
        noneLeft: async () => undefined,
        release: async () => {
          for (const file of files) {
            if (file.inTransaction) file.exec('ROLLBACK');
            file.close();
          }
        },
      };
    }
    const operator = new pg.Client({ connectionString: env.RWS_DATABASE_URL, application_name: 'operator console' });
    operator.on('error', () => undefined);
    await operator.connect();
    for (const environment of environments) await operator.query('SELECT pg_advisory_lock($1)', [lockKey(`sops:${environment}`).toString()]);
    const count = async (sql: string) => (await operator.query<{ n: number }>(sql)).rows[0]?.n ?? 0;
    const waitingSessions = () => count("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    const editSessions = () => count("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'secrets-server edit pid %'");
    return {
      waiting: async (n) => {
        await until(async () => (await waitingSessions()) === n, 10_000);
        // And no more: the edit of the environment past the bound waits for a turn, holding no session.
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(await waitingSessions()).toBe(n);
      },
      // A backend waiting on a lock does not notice its client is gone: it goes by its lock_timeout.
      noneLeft: async () => {
        await until(async () => (await editSessions()) === 0, 20_000);
        expect(await waitingSessions()).toBe(0);
      },
      release: () => operator.end(),
    };
  }
});
