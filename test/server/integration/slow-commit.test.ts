// A COMMIT that PostgreSQL takes long to finish, sent when little of the request's time is left.
// Once sent it gets the whole statement timeout: cut short by what was left, a commit the database
// applied would be answered 503 "nothing was served", with its use charged and its row written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let env: Record<string, string>;
let server: RunningServer;
let apiKey: string;

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

async function sql(text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

describe('a slow COMMIT sent late in a request', () => {
  it('is waited for with the whole statement timeout: the applied read is answered 200, as its audit row says', async () => {
    const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 5 });
    const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
    // 3 s in the use's UPDATE (before the COMMIT), and 3 s more in a deferred trigger, which
    // PostgreSQL runs inside the COMMIT: 6 s in all, past the 5 s a commit may wait to be sent.
    await sql(`CREATE FUNCTION slow_step() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
      CREATE TRIGGER slow_use BEFORE UPDATE OF uses ON tokens FOR EACH ROW EXECUTE FUNCTION slow_step();
      CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON audit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_step();`);
    const started = Date.now();
    const reply = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    const took = Date.now() - started;
    await sql('DROP TRIGGER slow_use ON tokens; DROP TRIGGER slow_commit ON audit; DROP FUNCTION slow_step()');
    // The database applied it: one use charged, one success row.
    expect(Number((await sql(`SELECT uses FROM tokens WHERE jti = '${jti}'`)).rows[0]?.uses)).toBe(1);
    const rows = (await sql(`SELECT outcome, status FROM audit WHERE jti = '${jti}' AND event = 'secret.read'`)).rows;
    expect(rows).toEqual([{ outcome: 'success', status: 200 }]);
    // And the answer says the same.
    expect(reply.status).toBe(200);
    expect(reply.body.value).toBe('b-key-value');
    expect(took).toBeGreaterThan(5_500);
  }, 60_000);
});
