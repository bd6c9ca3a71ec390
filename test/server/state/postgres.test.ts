// The shared StateStore suite on a real PostgreSQL server (started by the test setup), and what
// only PostgreSQL has: change notifications that keep replicas' caches honest.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { localChange } from '../../../src/server/audit/record.js';
import { openState } from '../../../src/server/state/open-state.js';
import { redactUrl } from '../../../src/server/url-credentials.js';
import { openPostgres } from '../../../src/server/state/postgres/postgres-driver.js';
import { IN_TRANSACTION, type SqlDriver, type Transaction, type TransactionOptions } from '../../../src/server/state/sql/driver.js';
import { commitOutcome } from '../../../src/server/state/postgres/commit-outcome.js';
import type { SqlStateStore } from '../../../src/server/state/sql/sql-state-store.js';
import { storePaths } from '../../../src/server/store/layout.js';
import { testDatabase } from '../../helpers/postgres.js';
import { describeStateStore, hashOf, key, presentedOf, row, tokenRecord, writePepper } from './conformance.js';

describeStateStore('PostgreSQL', { database: testDatabase });

describe('PostgreSQL replicas', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function twoReplicas(): Promise<{ a: SqlStateStore; b: SqlStateStore; url: string }> {
    const db = await testDatabase();
    const root = await mkdtemp(path.join(tmpdir(), 'rws-pg-'));
    const paths = storePaths(root);
    await writePepper(paths);
    const a = await openState(paths, db.url, { cache: true });
    const b = await openState(paths, db.url, { cache: true });
    cleanups.push(async () => {
      await Promise.all([a.close(), b.close()]);
      await db.drop();
      await rm(root, { recursive: true, force: true });
    });
    return { a, b, url: db.url };
  }

  it('a revocation on one replica is seen by the other, cache or not', async () => {
    const { a, b } = await twoReplicas();
    const now = new Date();
    await a.addApiKey(key('ak_00000000000000b1', { created_at: now.toISOString() }), localChange('apikey.create', 'ak_00000000000000b1', now));
    const t = { ...tokenRecord('jti-b1-000000000000', 'ak_00000000000000b1', null), issued_at: Math.floor(now.getTime() / 1000), expires_at: Math.floor(now.getTime() / 1000) + 300 };
    await a.commit({ effect: { kind: 'issue', token: t }, audit: () => row('token.generate', 201) }, now);
    const presented = presentedOf(t);
    // b caches the token's record and the key...
    expect((await b.tokenStatus(presented, now)).outcome).toBe('ok');
    expect(await b.findApiKey(hashOf('ak_00000000000000b1'))).toBeDefined();
    // ...and a revocation made through a reaches it: the commit is authoritative at once, the
    // cache as soon as the notification arrives.
    await a.commit({ effect: { kind: 'revoke', jti: t.jti }, audit: () => row('token.revoke', 204) }, now);
    expect(await b.commit({ effect: { kind: 'use', token: presented }, audit: () => row('secret.read') }, now)).toBe('revoked');
    const deadline = Date.now() + 2000;
    while ((await b.tokenStatus(presented, now)).outcome !== 'revoked' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await b.tokenStatus(presented, now)).outcome).toBe('revoked');
    await a.revokeApiKey('ak_00000000000000b1', now, localChange('apikey.revoke', 'ak_00000000000000b1', now));
    while (((await b.findApiKey(hashOf('ak_00000000000000b1')))?.revoked_at ?? null) === null && Date.now() < deadline + 2000) await new Promise((resolve) => setTimeout(resolve, 10));
    expect((await b.findApiKey(hashOf('ak_00000000000000b1')))?.revoked_at).not.toBeNull();
  });

  it('two batches that revoke one token and use another, crosswise, never deadlock: tokens are locked by jti, revocations and uses alike', async () => {
    const db = await testDatabase();
    const root = await mkdtemp(path.join(tmpdir(), 'rws-pg-'));
    cleanups.push(async () => {
      await db.drop();
      await rm(root, { recursive: true, force: true });
    });
    await writePepper(storePaths(root));
    const a = await openState(storePaths(root), db.url, { cache: true });
    const b = await openState(storePaths(root), db.url, { cache: true });
    const now = new Date();
    const at = Math.floor(now.getTime() / 1000);
    await a.addApiKey(key('ak_00000000000000d1', { created_at: now.toISOString() }), localChange('apikey.create', 'ak_00000000000000d1', now));
    const [first, second] = ['jti-d1-aaaaaaaaaaaa', 'jti-d1-bbbbbbbbbbbb'].map((jti) => ({ ...tokenRecord(jti, 'ak_00000000000000d1', null), issued_at: at, expires_at: at + 300 }));
    for (const t of [first!, second!]) await a.commit({ effect: { kind: 'issue', token: t }, audit: () => row('token.generate', 201) }, now);
    const admin = new pg.Client({ connectionString: db.url });
    admin.on('error', () => undefined);
    await admin.connect();
    const deadlocks = async (): Promise<number> => Number((await admin.query('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()')).rows[0].deadlocks);
    try {
      // A revocation holds its token's row for 300 ms: each batch then holds one token while it
      // asks for the other, were they locked in opposite orders.
      await admin.query(`CREATE FUNCTION slow_revoke() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$;
        CREATE TRIGGER slow_revoke BEFORE UPDATE OF revoked_at ON tokens FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION slow_revoke()`);
      const before = await deadlocks();
      const use = (t: typeof first) => ({ effect: { kind: 'use' as const, token: presentedOf(t!) }, audit: () => row('secret.read') });
      const revoke = (t: typeof first) => ({ effect: { kind: 'revoke' as const, jti: t!.jti }, audit: () => row('token.revoke', 204) });
      // Pushed in one turn, each store's two commits form one batch.
      const outcomes = await Promise.all([a.commit(revoke(first), now), a.commit(use(second), now), b.commit(revoke(second), now), b.commit(use(first), now)]);
      // Whichever batch goes first, the other's use comes after the first one's revocation.
      expect([outcomes[0], outcomes[2]]).toEqual(['ok', 'ok']);
      expect([outcomes[1], outcomes[3]].sort()).toEqual(['ok', 'revoked']);
      // A backend's statistics reach the shared counters when it ends.
      await Promise.all([a.close(), b.close()]);
      await admin.query('SELECT pg_stat_clear_snapshot()');
      expect(await deadlocks()).toBe(before);
    } finally {
      await admin.end();
    }
  });

  it('keeps serving when a newer server adds columns under its prepared statements', async () => {
    // Statements with parameters are prepared once per connection; those that return `*` are
    // not, because PostgreSQL refuses a cached plan whose result columns changed. A second
    // server's migration adding columns is the case: every path must go on working.
    const { a, url } = await twoReplicas();
    const now = new Date();
    await a.addApiKey(key('ak_00000000000000c1', { created_at: now.toISOString() }), localChange('apikey.create', 'ak_00000000000000c1', now));
    const t = { ...tokenRecord('jti-c1-000000000000', 'ak_00000000000000c1', 100), issued_at: Math.floor(now.getTime() / 1000), expires_at: Math.floor(now.getTime() / 1000) + 300 };
    await a.commit({ effect: { kind: 'issue', token: t }, audit: () => row('token.generate', 201) }, now);
    const presented = presentedOf(t);
    // Every connection of the pool prepares what a read, a lookup and a mint use.
    const round = async (): Promise<void> => {
      const uses = await Promise.all(Array.from({ length: 12 }, () => a.commit({ effect: { kind: 'use', token: presented }, audit: () => row('secret.read') }, now)));
      expect(uses.every((outcome) => outcome === 'ok')).toBe(true);
      expect((await a.findApiKey(hashOf('ak_00000000000000c1')))?.id).toBe('ak_00000000000000c1');
      // Lookups that return `*`, on several connections at once (a.findApiKey is cached).
      const lookups = await Promise.all(
        Array.from({ length: 6 }, async () => [(await a.tokenStatus(presented, now)).outcome, (await a.findToken(t.jti))?.jti, (await a.getApiKey('ak_00000000000000c1', now))?.id, (await a.queryAudit({ limit: 1 })).length]),
      );
      expect(lookups).toEqual(Array.from({ length: 6 }, () => ['ok', t.jti, 'ak_00000000000000c1', 1]));
    };
    await round();
    await round();
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      for (const table of ['api_keys', 'tokens', 'audit']) await admin.query(`ALTER TABLE ${table} ADD COLUMN added_later TEXT`);
    } finally {
      await admin.end();
    }
    await round();
    expect((await a.findToken(t.jti))?.uses).toBe(24 + 12);
    expect((await a.queryAudit({ event: 'secret.read', limit: 100 })).length).toBe(36);
  });

  it('never shows the password of the URL', async () => {
    const { url } = await twoReplicas();
    const password = new URL(url).password;
    expect(password.length).toBeGreaterThan(0);
    expect(redactUrl(url)).not.toContain(password);
    const wrong = new URL(url);
    wrong.port = '1';
    const failure = await openState(storePaths(tmpdir()), wrong.toString()).catch((error: unknown) => error as Error & { code?: string });
    expect(failure).toMatchObject({ code: 'RWS_STATE_UNAVAILABLE' });
    expect(String((failure as Error).message)).not.toContain(password);
    expect(String((failure as Error).message)).toContain('***');
  });
});

describe('PostgreSQL errors that are answers, not outages', () => {
  it('a value the database refuses as data (class 22) is RWS_STATE_INVALID, never RWS_STATE_UNAVAILABLE', async () => {
    const db = await testDatabase();
    const { openPostgres } = await import('../../../src/server/state/postgres/postgres-driver.js');
    const driver = await openPostgres(db.url);
    try {
      // 22021: text cannot hold a NUL; 22003: out of range. Neither in a query nor in a transaction.
      await expect(driver.query('SELECT $1::text AS t', ['nul\u0000here'])).rejects.toMatchObject({ code: 'RWS_STATE_INVALID', message: expect.stringContaining('22021') });
      await expect(driver.transaction((tx) => tx.query('SELECT $1::int AS n', ['99999999999']))).rejects.toMatchObject({ code: 'RWS_STATE_INVALID', message: expect.stringContaining('22003') });
      // The connection is still good afterwards.
      expect(await driver.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await driver.close();
      await db.drop();
    }
  });
});

describe('PostgreSQL pool', () => {
  it('a statement that waits out the connect timeout for one of the pool’s connections, all busy, is said as that, with a hint that fits', async () => {
    const db = await testDatabase();
    const { openPostgres } = await import('../../../src/server/state/postgres/postgres-driver.js');
    const { POOL_SIZE } = await import('../../../src/server/state/postgres/pool.js');
    const driver = await openPostgres(db.url);
    try {
      // Each busy for 4 s, within the statement timeout (5 s) and past the connect timeout (3 s).
      const outcomes = await Promise.allSettled(Array.from({ length: POOL_SIZE + 2 }, () => driver.query('SELECT pg_sleep(4)')));
      expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(POOL_SIZE);
      const refused = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as Error & { code?: string; hint?: string }] : []));
      expect(refused).toHaveLength(2);
      for (const error of refused) {
        expect(error.code).toBe('RWS_STATE_UNAVAILABLE');
        expect(error.message).toContain(`all ${POOL_SIZE} of this process's connections to it were busy for 3 s`);
        expect(error.message).not.toContain('connection failed');
        expect(error.hint).toContain('pg_stat_activity');
      }
    } finally {
      await driver.close();
      await db.drop();
    }
  }, 30_000);
});

/** A database of its own and a server's driver on it, for one test; both gone after it. */
async function onDriver(run: (driver: SqlDriver, url: string) => Promise<void>): Promise<void> {
  const db = await testDatabase();
  const driver = await openPostgres(db.url, { serving: true });
  try {
    await run(driver, db.url);
  } finally {
    await driver.close();
    await db.drop();
  }
}

describe('PostgreSQL transactions', () => {
  it('asks after a lost COMMIT by its transaction id and its own row, and ends a session only while it is still in that very transaction', () =>
    onDriver(async (driver, url) => {
      const ask = (sql: string, params: readonly unknown[]) => driver.query(sql, params);
      const xidOf = async (tx: Transaction) => (await tx.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid'))[0]?.xid as string;
      await driver.query('CREATE TABLE marks (n INTEGER)');
      const committed = await driver.transaction(async (tx) => {
        await tx.query('INSERT INTO marks VALUES ($1)', [1]);
        return xidOf(tx);
      });
      const wrote = (n: number) => ({ sql: 'SELECT n FROM marks WHERE n = $1', params: [n] });
      let rolledBack = '';
      await driver.transaction(async (tx) => {
        rolledBack = await xidOf(tx);
        throw new Error('rolled back');
      }).catch(() => undefined);
      // Another session, in a transaction of its own, at the pid a lost COMMIT names (a pid the
      // database gave again): asked about other transactions, it is left alone.
      const other = new pg.Client({ connectionString: url });
      other.on('error', () => undefined);
      await other.connect();
      try {
        await other.query('BEGIN');
        const mine = (await other.query<{ xid: string; pid: number }>('SELECT pg_current_xact_id()::text AS xid, pg_backend_pid() AS pid')).rows[0] as { xid: string; pid: number };
        expect(await commitOutcome(ask, { xid: committed, pid: mine.pid, proof: wrote(1) })).toBe('committed');
        // Committed by its id, but what it wrote is not there (the id given again after a crash or
        // a failover, to another transaction): unknown. So is a commit with no row to find.
        expect(await commitOutcome(ask, { xid: committed, pid: mine.pid, proof: wrote(2) })).toBeUndefined();
        expect(await commitOutcome(ask, { xid: committed, pid: mine.pid })).toBeUndefined();
        expect(await commitOutcome(ask, { xid: rolledBack, pid: mine.pid })).toBe('aborted');
        expect((await other.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
        // Asked about its own transaction, still open: the session is ended, and the transaction
        // can then only be aborted, which is what is answered.
        expect(await commitOutcome(ask, mine)).toBe('aborted');
        await expect(other.query('SELECT 1')).rejects.toThrow();
        // An id the database never gave: unknown, never taken for either.
        expect(await commitOutcome(ask, { xid: '999999999999', pid: mine.pid })).toBeUndefined();
      } finally {
        await other.end().catch(() => undefined);
      }
    }));

  it('marks the transactions it begins, with the BEGIN pipelined or not, and nothing outside them (what a use sent behind a failed BEGIN checks)', () =>
    onDriver(async (driver) => {
      const inside = async (options: TransactionOptions) => (await driver.transaction((tx) => tx.query<{ inside: boolean }>(`SELECT ${IN_TRANSACTION} AS inside`), options))[0]?.inside;
      expect(await inside({})).toBe(true);
      expect(await inside({ pipelined: true })).toBe(true);
      expect(await inside({ pipelined: true, durable: false })).toBe(true);
      // The pool's connections after their transactions, each statement on its own: never marked.
      const outside = await Promise.all(Array.from({ length: 12 }, async () => (await driver.query<{ inside: boolean }>(`SELECT ${IN_TRANSACTION} AS inside`))[0]?.inside));
      expect(outside).toEqual(Array.from({ length: 12 }, () => false));
      // A pipelined transaction's statements see what it began: a write and its read back.
      await driver.query('CREATE TABLE marks (n INTEGER)');
      const seen = await driver.transaction(async (tx) => {
        expect(await tx.query<{ n: number }>('SELECT n FROM marks')).toEqual([]);
        tx.write('INSERT INTO marks VALUES ($1)', [1]);
        return tx.query<{ n: number }>('SELECT n FROM marks');
      }, { pipelined: true });
      expect(seen).toEqual([{ n: 1 }]);
    }));

  it('a statement asked for once the deadline has passed fails as a rejected promise, never as a throw that would leave one sent before it unawaited', () =>
    onDriver(async (driver) => {
      let thrown = false;
      let settled: string | undefined;
      const outcome = await driver
        .transaction(
          async (tx) => {
            await new Promise((resolve) => setTimeout(resolve, 300));
            let answer: Promise<unknown> | undefined;
            try {
              answer = tx.query('SELECT 1');
            } catch {
              thrown = true;
            }
            settled = await answer?.then(() => 'answered', (error: unknown) => String(error));
          },
          { deadline: Date.now() + 150 },
        )
        .then(() => 'committed', (error: unknown) => String(error));
      expect(thrown).toBe(false);
      expect(settled).toMatch(/did not answer in time/);
      expect(outcome).toMatch(/did not answer in time/);
    }));

  it('sends one write per transaction, only once a pipelined BEGIN is answered, and makes a statement behind it wait for it (its error first)', () =>
    onDriver(async (driver) => {
      await driver.query('CREATE TABLE marks (n INTEGER PRIMARY KEY)');
      const failure = (run: Promise<unknown>) => run.then(() => 'committed', (error: unknown) => error as { code?: string; message?: string });
      // A second write would run after the first, which the timers behind them do not count.
      const twice = await failure(driver.transaction(async (tx) => {
        tx.write('INSERT INTO marks VALUES ($1)', [1]);
        tx.write('INSERT INTO marks VALUES ($1)', [2]);
    }));
    expect(twice).toMatchObject({ message: 'a transaction sends one write, once its BEGIN is answered' });
    // Behind a pipelined BEGIN not yet answered, a write would commit on its own if it failed.
    const early = await failure(driver.transaction(async (tx) => tx.write('INSERT INTO marks VALUES ($1)', [3]), { pipelined: true }));
    expect(early).toMatchObject({ message: 'a transaction sends one write, once its BEGIN is answered' });
    expect(await driver.query('SELECT n FROM marks')).toEqual([]);
    // A write that fails (a duplicate key) and a statement after it: the write's error is thrown.
    await driver.query('INSERT INTO marks VALUES (9)');
    const duplicate = await failure(driver.transaction(async (tx) => {
      tx.write('INSERT INTO marks VALUES ($1)', [9]);
      await tx.query('SELECT n FROM marks');
    }));
    expect(duplicate).toMatchObject({ code: '23505' });
    expect(await driver.query('SELECT n FROM marks')).toEqual([{ n: 9 }]);
    }));

  it('imports a legacy audit trail of many INSERTs one at a time, each with its own statement timeout', async () => {
    const db = await testDatabase();
    const root = await mkdtemp(path.join(tmpdir(), 'rws-pg-'));
    const paths = storePaths(root);
    await writePepper(paths);
    const state = await openState(paths, db.url, { cache: false, importLegacy: false });
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      // 801 rows are 5 INSERTs of at most 200, each 1.5 s here: 7.5 s in all, past one statement
      // timeout (5 s) when they all went out at once behind one bound.
      await admin.query(`CREATE FUNCTION slow_chunk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
        CREATE TRIGGER slow_chunk AFTER INSERT ON audit FOR EACH STATEMENT EXECUTE FUNCTION slow_chunk();`);
      const audit = Array.from({ length: 801 }, () => row('secret.read'));
      expect(await state.importLegacy({ keys: [], lastUsed: new Map(), tokens: [], audit, files: [] }, root, new Date())).toBe(true);
      expect(Number((await admin.query('SELECT count(*) AS n FROM audit')).rows[0]?.n)).toBeGreaterThanOrEqual(801);
    } finally {
      await admin.end();
      await state.close();
      await db.drop();
      await rm(root, { recursive: true, force: true });
    }
  }, 30_000);
});
