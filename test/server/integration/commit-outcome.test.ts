// A COMMIT whose answer never reaches the server. PostgreSQL may apply such a COMMIT after the
// server stopped waiting; the server asks what became of it before it answers (commit-outcome.ts).
// (slow-commit.test.ts has the COMMIT a deferred trigger holds, which is ended and never applied.)
import net from 'node:net';
import { expect, it } from 'vitest';
import pg from 'pg';
import { call, cleanedAfterEach, makeApiKey, token } from '../helpers/server.js';
import { postgresControl, testDatabase } from '../../helpers/postgres.js';

const made = cleanedAfterEach();
const jtiOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;

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

/**
 * A TCP relay to the database that, once a connection has carried `marker` (a token's jti, in
 * its use's statements), drops everything the database sends back on it after its next COMMIT
 * goes through: the COMMIT is applied, its answer is lost on the way, as on a network that fails.
 */
async function lossyRelay(target: URL, marker: string): Promise<{ url: string; lost: () => boolean; close(): Promise<void> }> {
  let lost = false;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    let marked = false;
    let dropping = false;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => (socket === client ? upstream : client).destroy());
    }
    client.on('data', (chunk: Buffer) => {
      if (chunk.includes(marker)) marked = true;
      // A simple-protocol query ends with NUL: `COMMIT\0`, never the BEGIN's `READ COMMITTED`.
      if (marked && !lost && chunk.includes('COMMIT\0')) dropping = lost = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!dropping) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.port = String((relay.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    lost: () => lost,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}

/** A store, a server on the database at `url`, and a token of limit 5 it minted. */
async function servedWithToken(url: string) {
  const env = { RWS_DATABASE_URL: url };
  const store = await made.store({ production: { SERVICE_B_KEY: 'b-key-value' } });
  const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*'], [], env);
  const server = await made.serve(store, [], env);
  const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 5 });
  return { store, server, t, jti: jtiOf(t) };
}

it('a COMMIT the database applied but whose answer was lost is found applied: the read is answered 200, charged once, one row', async () => {
  const db = await testDatabase();
  const { store, server: direct, t, jti } = await servedWithToken(db.url);
  const relay = await lossyRelay(new URL(db.url), jti);
  let running: Awaited<ReturnType<typeof made.serve>> | undefined;
  try {
    running = await made.serve(store, [], { RWS_DATABASE_URL: relay.url });
    const started = Date.now();
    const reply = await call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    const took = Date.now() - started;
    expect(relay.lost()).toBe(true);
    const uses = Number((await asAdmin(db.url, 'SELECT uses FROM tokens WHERE jti = $1', [jti])).rows[0]?.uses);
    const rows = (await asAdmin(db.url, "SELECT outcome, status FROM audit WHERE jti = $1 AND event = 'secret.read'", [jti])).rows;
    expect({ uses, rows }).toEqual({ uses: 1, rows: [{ outcome: 'success', status: 200 }] });
    // The answer says what the database holds; it waited for the COMMIT's answer in vain first.
    expect([reply.status, reply.body.value]).toEqual([200, 'b-key-value']);
    expect(took).toBeGreaterThan(5_000);
    expect(running.stderr()).not.toContain(t);
  } finally {
    // Stopped here (again after the test: harmless) so that their database can go now.
    await Promise.all([running?.stop(), direct.stop()]);
    await relay.close();
    await db.drop();
  }
}, 90_000);

const control = postgresControl();

it('a COMMIT held by a synchronous standby is left to the standby, never forced through: 503 "may yet be recorded", and it applies once the standby requirement is lifted', async (context) => {
  // A server of this test's own: a standby required server-wide would hold every other test's commits.
  if (control === undefined) return context.skip();
  await control.start();
  const { server: running, t, jti } = await servedWithToken(control.url);
  await asAdmin(control.url, "ALTER SYSTEM SET synchronous_standby_names = 'rws_test_standby_that_never_comes'");
  await asAdmin(control.url, 'SELECT pg_reload_conf()');
  let reply;
  let waiting;
  try {
    reply = await call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    // The session still waits for the standby: the server did not end it (that would have made
    // the commit stand unreplicated, against what the database was told to guarantee).
    waiting = (await asAdmin(control.url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'")).rows[0]?.n;
  } finally {
    await asAdmin(control.url, 'ALTER SYSTEM RESET synchronous_standby_names');
    await asAdmin(control.url, 'SELECT pg_reload_conf()');
  }
  expect(waiting).toBeGreaterThanOrEqual(1);
  expect(reply.status).toBe(503);
  expect(reply.body.error).toMatchObject({ code: 'RWS_STATE_UNAVAILABLE', message: 'the state database did not confirm the request; nothing was served, though it may yet be recorded' });
  expect(reply.body.value).toBeUndefined();
  // Released by the lifted requirement, the commit applies, as the answer warned it might.
  let uses = 0;
  for (const until = Date.now() + 10_000; Date.now() < until && uses === 0; await new Promise((resolve) => setTimeout(resolve, 100))) {
    uses = Number((await asAdmin(control.url, 'SELECT uses FROM tokens WHERE jti = $1', [jti])).rows[0]?.uses);
  }
  expect(uses).toBe(1);
  // The operator is told why, once, with what to look at.
  expect(running.stderr()).toMatch(/did not answer a commit, and whether it applied could not be told \(it may be waiting for a synchronous standby\)/);
  expect(running.stderr()).not.toContain(t);
}, 90_000);
