// The server's own time limits on PostgreSQL, which make "the database does not answer → 503
// RWS_STATE_UNAVAILABLE within the request timeout" true: a connect that times out says so, and
// where it was connecting, never the URL's password; and a URL's own limits (`?statement_timeout=0`),
// or those node-postgres reads from the environment (PGOPTIONS, PGCONNECT_TIMEOUT, NODE_PG_FORCE_NATIVE),
// do not lift them.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { testDatabase } from '../../helpers/postgres.js';
import { BIN, call, cli, makeStore, type RunningServer, startServer, type TestStore } from '../helpers/server.js';

const PASSWORD = 'pw-c0nnect-TIMEOUT-9f3e';

let store: TestStore;
let hole: Server;
const accepted: Socket[] = [];

beforeAll(async () => {
  store = await makeStore();
  // Accepts every connection and never says a word: a server behind a firewall that lets the
  // handshake through, a host that is up with PostgreSQL stopped (SIGSTOP), a proxy to nowhere.
  hole = createServer((socket) => {
    accepted.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await new Promise((resolve) => hole?.close(resolve));
  await store?.cleanup();
});

it('a connect that times out says so, with how long and where, and a hint that fits; never the password', async () => {
  const { port } = hole.address() as AddressInfo;
  const url = `postgres://rws:${PASSWORD}@127.0.0.1:${port}/rws`;
  for (const [args, env] of [
    [['db', 'status', '--database-url', url], {}],
    [['apikey', 'list'], { RWS_DATABASE_URL: url }],
  ] as const) {
    const started = Date.now();
    const result = await cli([...args, '--store', store.dir], { env });
    const took = Date.now() - started;
    expect({ args, exitCode: result.exitCode, stdout: result.stdout }).toEqual({ args, exitCode: 1, stdout: '' });
    expect(result.stderr).toContain('RWS_STATE_UNAVAILABLE');
    expect(result.stderr).toContain(`connecting to 127.0.0.1:${port} timed out after 3 s`);
    expect(result.stderr).toContain(`check that 127.0.0.1:${port} is reachable`);
    expect(result.stderr).not.toContain('connection failed');
    expect(result.stderr).not.toContain('db status');
    expect(result.stderr).not.toContain(PASSWORD);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    // The server's connect timeout, not a hang: 3 s and the process's start.
    expect(took).toBeLessThan(15_000);
  }
  expect(accepted.length).toBeGreaterThanOrEqual(2);
});

it("a database URL's own time limits, and those of PGOPTIONS, PGCONNECT_TIMEOUT and NODE_PG_FORCE_NATIVE, are ignored, said once, and a statement blocked by another session still ends within the server's statement timeout", async () => {
  const db = await testDatabase();
  const edited = await makeStore();
  const password = decodeURIComponent(new URL(db.url).password);
  expect(password.length).toBeGreaterThan(0);
  // Made (and the server started) before the table is locked: both read schema_migrations.
  await cli(['db', 'migrate', '--store', edited.dir], { env: { RWS_DATABASE_URL: db.url } });
  let server: RunningServer | undefined = await startServer(edited, [], { RWS_DATABASE_URL: `${db.url}?statement_timeout=0&query_timeout=0` });
  // Another session holds a lock every command's first query waits for: `db status` and
  // /healthz read the schema version. (The edit lock is no vehicle: its wait has its own bound.)
  const operator = new pg.Client({ connectionString: db.url });
  operator.on('error', () => undefined);
  await operator.connect();
  const waiting = async () => (await operator.query("SELECT pid FROM pg_locks WHERE locktype = 'relation' AND NOT granted AND relation = 'schema_migrations'::regclass")).rows.length;
  try {
    await operator.query('BEGIN');
    await operator.query('LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE');
    const cases: Array<[string, string[], Record<string, string>?]> = [
      // The client's own read timeout ends the command either way; the database's statement
      // timeout is what ends the session's wait (a backend waiting on a lock does not notice its
      // client is gone), seen below.
      ['statement_timeout=0', ['statement_timeout']],
      ['sslmode=disable&statement_timeout=0&query_timeout=0&idle_in_transaction_session_timeout=0&connect_timeout=600', ['statement_timeout', 'query_timeout', 'idle_in_transaction_session_timeout', 'connect_timeout']],
      // PostgreSQL applies the startup parameters the server sends after `options`: only said.
      ['options=-c%20statement_timeout%3D0&query_timeout=0', ['options (-c statement_timeout)', 'query_timeout']],
      // WHATWG URL trims a control character off the URL's end: node-postgres reads an empty
      // statement_timeout, which unsets the server's, and the session then had no limit at all.
      ['statement_timeout\x01', ['statement_timeout']],
      // node-postgres reads PGOPTIONS (when the URL has no options) and PGCONNECT_TIMEOUT (when
      // it is given no connect timeout): neither lifts a limit, both are said.
      ['sslmode=disable', ['PGOPTIONS (-c statement_timeout)', 'PGOPTIONS (-c idle_in_transaction_session_timeout)', 'PGCONNECT_TIMEOUT'], { PGOPTIONS: '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0', PGCONNECT_TIMEOUT: '600' }],
      // It makes node-postgres load its libpq client, which is sent no statement limit (and,
      // pg-native not installed, failed every command with RWS_INTERNAL): taken out.
      ['sslmode=disable', ['NODE_PG_FORCE_NATIVE'], { NODE_PG_FORCE_NATIVE: '1' }],
      ['query_timeout=0', ['query_timeout', 'PGCONNECT_TIMEOUT'], { PGCONNECT_TIMEOUT: '600' }],
    ];
    for (const [query, names, variables] of cases) {
      const started = Date.now();
      // Without the server's limits the command would wait for as long as the lock is held.
      const result = await execa(BIN, ['db', 'status', '--store', edited.dir], { env: { RWS_DATABASE_URL: `${db.url}?${query}`, ...variables }, reject: false, timeout: 25_000 });
      const took = Date.now() - started;
      const stderr = String(result.stderr);
      expect({ query, exitCode: result.exitCode, timedOut: result.timedOut }).toEqual({ query, exitCode: 1, timedOut: false });
      expect(took).toBeLessThan(15_000);
      expect(stderr).toContain('RWS_STATE_UNAVAILABLE');
      const warnings = stderr.split('\n').filter((line) => line.includes('warning RWS_DATABASE_TIMEOUT_IGNORED'));
      expect(warnings).toHaveLength(1);
      for (const name of names) expect(warnings[0]).toContain(name);
      // Names only: no value of a variable.
      expect(warnings[0]).not.toMatch(/=0|600/);
      expect(stderr).not.toContain(password);
      expect(stderr).not.toContain(encodeURIComponent(password));
      // The command's session gave up its wait by itself: its statement timeout was in force.
      const gone = Date.now() + 3_000;
      while ((await waiting()) > 0 && Date.now() < gone) await new Promise((resolve) => setTimeout(resolve, 100));
      expect({ query, waiting: await waiting() }).toEqual({ query, waiting: 0 });
    }
    // A server: the same warning once at its start, and a 503 within the statement timeout.
    const started = Date.now();
    const held = await Promise.race([call(`${server.url}/healthz`), new Promise<undefined>((resolve) => setTimeout(resolve, 25_000))]);
    expect(held?.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(15_000);
    await operator.query('ROLLBACK');
    expect((await call(`${server.url}/healthz`)).status).toBe(200);
    const warnings = server.stderr().split('\n').filter((line) => line.includes('warning RWS_DATABASE_TIMEOUT_IGNORED'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('statement_timeout, query_timeout are ignored');
    expect(server.stderr()).not.toContain(password);
    await server.stop();
    server = undefined;
  } finally {
    await server?.stop();
    await operator.end().catch(() => undefined);
    await db.drop();
    await edited.cleanup();
  }
}, 120_000);

it('an edit with NODE_PG_FORCE_NATIVE set runs on the JavaScript client and says the variable is ignored', async () => {
  const db = await testDatabase();
  const edited = await makeStore();
  try {
    const env = { RWS_DATABASE_URL: db.url, NODE_PG_FORCE_NATIVE: '1' };
    const result = await cli(['secret', 'set', 'production', 'NATIVE', '--store', edited.dir], { input: 'native-value', env });
    expect({ exitCode: result.exitCode, stdout: result.stdout }).toEqual({ exitCode: 0, stdout: 'set NATIVE in production\n' });
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringContaining("warning RWS_DATABASE_TIMEOUT_IGNORED: the environment's NODE_PG_FORCE_NATIVE is ignored")]);
    expect((await cli(['secret', 'list', 'production', '--store', edited.dir], { env })).stdout.trim()).toBe('NATIVE');
  } finally {
    await db.drop();
    await edited.cleanup();
  }
}, 60_000);
