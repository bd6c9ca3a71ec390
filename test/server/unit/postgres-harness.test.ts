// The PostgreSQL test harness itself, against the real server it starts: if these fail, every
// PostgreSQL test after them would fail for reasons of its own.
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresControl, testDatabase } from '../../helpers/postgres.js';

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  // The outage test cuts connections; unhandled, that error would crash the worker.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function failure(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a failure');
}

describe('testDatabase', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  it('gives fresh, empty databases that do not see each other', async () => {
    const [a, b] = await Promise.all([testDatabase(), testDatabase()]);
    cleanups.push(a.drop, b.drop);
    expect(a.url).not.toBe(b.url);
    const clientA = await connect(a.url);
    const clientB = await connect(b.url);
    cleanups.push(() => clientA.end(), () => clientB.end());
    const tables = "SELECT count(*)::int AS n FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')";
    expect((await clientA.query(tables)).rows[0].n).toBe(0);

    await clientA.query('CREATE TABLE t (v text)');
    await clientA.query("INSERT INTO t VALUES ('only in a')");
    expect((await clientB.query(tables)).rows[0].n).toBe(0);
    expect((await failure(clientB.query('SELECT * FROM t'))).code).toBe('42P01'); // undefined_table
    expect((await clientA.query('SELECT v FROM t')).rows).toEqual([{ v: 'only in a' }]);
    const names = await Promise.all([clientA, clientB].map(async (c) => (await c.query('SELECT current_database() AS d')).rows[0].d));
    expect(names[0]).not.toBe(names[1]);
    expect((await clientA.query('SHOW server_encoding')).rows[0].server_encoding).toBe('UTF8');
  });

  it('drop() removes the database even with a session still on it, and may be called twice', async () => {
    const db = await testDatabase();
    const leftover = await connect(db.url);
    await db.drop();
    await expect(leftover.query('SELECT 1')).rejects.toThrow();
    expect((await failure(connect(db.url))).code).toBe('3D000'); // invalid_catalog_name: it is gone
    await db.drop();
  });
});

const control = postgresControl();

describe('postgresControl', () => {
  it.skipIf(!control)('stopImmediate() cuts every connection; start() brings the same server back, data included', async () => {
    const server = control!;
    await server.start();
    const before = await connect(server.url);
    await before.query('CREATE TABLE kept (v int)');
    await before.query('INSERT INTO kept VALUES (42)'); // committed, never checkpointed

    await server.stopImmediate();
    await expect(before.query('SELECT 1')).rejects.toThrow();
    const refused = await failure(connect(server.url));
    expect(refused.code).toBe('ECONNREFUSED');
    expect(String(refused.stack)).not.toContain(new URL(server.url).password);

    await server.start();
    const after = await connect(server.url);
    expect((await after.query('SELECT v FROM kept')).rows).toEqual([{ v: 42 }]);
    await after.end();
    await before.end().catch(() => undefined);
  });

  it.skipIf(!control)('hands out its URL before the server exists, and each control is a server of its own', async () => {
    const other = postgresControl()!;
    expect(other.url).not.toBe(control!.url);
    expect((await failure(connect(other.url))).code).toBe('ECONNREFUSED');
    await other.start();
    await other.start(); // already running: nothing to do
    const client = await connect(other.url);
    expect((await client.query('SELECT to_regclass($1) AS t', ['kept'])).rows[0].t).toBeNull();
    await client.end();
    await other.stopImmediate();
  });
});
