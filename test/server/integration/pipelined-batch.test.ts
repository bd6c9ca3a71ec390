// With PostgreSQL, a batch of reads sends its statements without waiting on each answer: the uses'
// UPDATEs and the audit chain's head in one round trip, the audit INSERT with the COMMIT in
// another. A statement failing in the middle must fail the whole batch (nothing charged, nothing
// audited, nothing served), and leave the connection it ran on fit for the next batch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { call, cliOk, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let server: RunningServer;
let apiKey: string;
let env: Record<string, string>;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'b-key-value' } });
  db = await testDatabase();
  env = { RWS_DATABASE_URL: db.url };
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'], [], env)).key;
  server = await startServer(store, [], env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  await store?.cleanup();
});

async function sql(text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

const jtiOf = (t: string): string => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;

async function charged(jti: string): Promise<number> {
  return Number((await sql('SELECT uses FROM tokens WHERE jti = $1', [jti])).rows[0]?.uses);
}

async function served(jti: string): Promise<number> {
  return Number((await sql("SELECT COALESCE(SUM(count), 0) AS n FROM audit WHERE jti = $1 AND event = 'secret.read' AND outcome = 'success'", [jti])).rows[0]?.n);
}

const read = (t: string) => call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });

/** 40 reads of `refused` and 40 of `good`, all at once, so that many batches hold both. */
async function readBoth(refused: string, good: string): Promise<{ refused: number[]; good: number[] }> {
  const replies = await Promise.all(Array.from({ length: 80 }, (_, i) => read(i % 2 === 0 ? refused : good)));
  const statuses = replies.map((reply) => reply.status);
  return { refused: statuses.filter((_, i) => i % 2 === 0), good: statuses.filter((_, i) => i % 2 === 1) };
}

async function expectServedAfter(good: string, before: number): Promise<void> {
  // Every connection of the pool gets its turn: 60 reads at once, all served and counted.
  const replies = await Promise.all(Array.from({ length: 60 }, () => read(good)));
  expect(replies.map((reply) => reply.status)).toEqual(Array.from({ length: 60 }, () => 200));
  expect(await charged(jtiOf(good))).toBe(before + 60);
  expect(await served(jtiOf(good))).toBe(before + 60);
}

describe('a read batch whose statements are pipelined', () => {
  it("fails whole when a use's UPDATE fails in the database, with the head read sent behind it", async () => {
    const refused = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1000 });
    const good = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    // The refused token sorts first in some batches and last in others: its jti decides, both are tried below.
    await sql(`CREATE FUNCTION refuse_use() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
      CREATE TRIGGER refuse_use BEFORE UPDATE OF uses ON tokens FOR EACH ROW WHEN (OLD.jti = '${jtiOf(refused)}') EXECUTE FUNCTION refuse_use();`);
    try {
      const { refused: refusedStatuses, good: goodStatuses } = await readBoth(refused, good);
      expect(new Set(refusedStatuses)).toEqual(new Set([503]));
      // The good token's reads that shared a batch with a refused one failed with it; the others
      // were served. Whatever the split, what was charged and audited is exactly what was served.
      const goodServed = goodStatuses.filter((status) => status === 200).length;
      expect(goodStatuses.every((status) => status === 200 || status === 503)).toBe(true);
      expect(await charged(jtiOf(refused))).toBe(0);
      expect(await served(jtiOf(refused))).toBe(0);
      expect(await charged(jtiOf(good))).toBe(goodServed);
      expect(await served(jtiOf(good))).toBe(goodServed);
      await expectServedAfter(good, goodServed);
    } finally {
      await sql('DROP TRIGGER refuse_use ON tokens; DROP FUNCTION refuse_use()');
    }
    expect(server.process.exitCode).toBeNull();
    expect(server.stderr()).not.toMatch(/unhandled|RWS_INTERNAL/i);
  }, 60_000);

  it('commits nothing when an audit INSERT sent ahead of the COMMIT fails: the COMMIT is a rollback', async () => {
    const refused = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const good = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1000 });
    await sql(`CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
      CREATE TRIGGER refuse_row BEFORE INSERT ON audit FOR EACH ROW WHEN (NEW.jti = '${jtiOf(refused)}') EXECUTE FUNCTION refuse_row();`);
    try {
      const { refused: refusedStatuses, good: goodStatuses } = await readBoth(refused, good);
      expect(new Set(refusedStatuses)).toEqual(new Set([503]));
      const goodServed = goodStatuses.filter((status) => status === 200).length;
      expect(goodStatuses.every((status) => status === 200 || status === 503)).toBe(true);
      // The uses were charged by UPDATEs that had succeeded: rolled back with the batch.
      expect(await charged(jtiOf(refused))).toBe(0);
      expect(await served(jtiOf(refused))).toBe(0);
      expect(await charged(jtiOf(good))).toBe(goodServed);
      expect(await served(jtiOf(good))).toBe(goodServed);
      await expectServedAfter(good, goodServed);
    } finally {
      await sql('DROP TRIGGER refuse_row ON audit; DROP FUNCTION refuse_row()');
    }
    // The chain is whole: every row committed links to the one before it.
    expect(await cliOk(['audit', 'verify', '--store', store.dir], { env })).toMatch(/verified/);
    expect(server.process.exitCode).toBeNull();
    expect(server.stderr()).not.toMatch(/unhandled|RWS_INTERNAL/i);
  }, 60_000);
});
