// A COMMIT that PostgreSQL applies after the server stopped waiting for it: a synchronous standby
// that never answers holds every durable COMMIT (a limited token's use is one) after it is already
// committed locally. The server ends that session once its timer fires, asks what became of the
// transaction, and answers as the database holds it: served, charged once, one success row. It
// used to answer 503 "nothing was served" with the use charged and the row written.
// (slow-commit.test.ts has the COMMIT a deferred trigger holds, which is ended and never applied.)
import { expect, it } from 'vitest';
import pg from 'pg';
import { call, cleanedAfterEach, makeApiKey, token } from '../helpers/server.js';
import { postgresControl } from '../../helpers/postgres.js';

const control = postgresControl();
const made = cleanedAfterEach();

async function asAdmin(url: string, sql: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}

it('a durable COMMIT held by a synchronous standby past its timer is answered as committed: 200, one use, one row', async (context) => {
  // A server of this test's own: a standby required server-wide would hold every other test's commits.
  if (control === undefined) return context.skip();
  await control.start();
  const env = { RWS_DATABASE_URL: control.url };
  const store = await made.store({ production: { SERVICE_B_KEY: 'b-key-value' } });
  const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*'], [], env);
  const running = await made.serve(store, [], env);
  const t = await token(running, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 5 });
  const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
  await asAdmin(control.url, "ALTER SYSTEM SET synchronous_standby_names = 'rws_test_standby_that_never_comes'");
  await asAdmin(control.url, 'SELECT pg_reload_conf()');
  let reply;
  const started = Date.now();
  try {
    reply = await call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
  } finally {
    await asAdmin(control.url, 'ALTER SYSTEM RESET synchronous_standby_names');
    await asAdmin(control.url, 'SELECT pg_reload_conf()');
  }
  const took = Date.now() - started;
  const uses = Number((await asAdmin(control.url, 'SELECT uses FROM tokens WHERE jti = $1', [jti])).rows[0]?.uses);
  const rows = (await asAdmin(control.url, "SELECT outcome, status FROM audit WHERE jti = $1 AND event = 'secret.read'", [jti])).rows;
  expect({ uses, rows }).toEqual({ uses: 1, rows: [{ outcome: 'success', status: 200 }] });
  // The answer says what the database holds. (It waited out the COMMIT's timer: the standby was real.)
  expect(reply.status).toBe(200);
  expect(reply.body.value).toBe('b-key-value');
  expect(took).toBeGreaterThan(5_000);
  // The session was ended and the next read goes through as usual.
  expect((await call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
  expect(running.stderr()).not.toContain(t);
}, 90_000);
