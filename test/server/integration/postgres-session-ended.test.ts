// A server's PostgreSQL sessions ended under it (a restart or failover of the database, an
// operator's pg_terminate_backend) at the moments node-postgres reports as an 'error' event on a
// client taken from the pool, which has no listener of its own: the server must answer and go
// on, never crash. A secrets file edit holds the environment's lock in such a session: once the
// session has ended the lock may be another editor's, so the edit must not replace the file.
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { call, cli, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';
import { lockKey } from '../../../src/server/state/sql/driver.js';

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let server: RunningServer;
let admin: string;
let reader: string;
let env: Record<string, string>;

beforeAll(async () => {
  store = await makeStore({ production: { KEPT: 'kept-value' } });
  db = await testDatabase();
  env = { RWS_DATABASE_URL: db.url };
  admin = (await makeApiKey(store, [], [], ['--admin'], env)).key;
  reader = (await makeApiKey(store, ['production'], ['KEPT'], [], env)).key;
  server = await startServer(store, [], env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  await store?.cleanup();
});

const secrets = (name = '') => `${server.url}/api/v1/admin/environments/production/secrets${name}`;

async function operatorSession(): Promise<pg.Client> {
  const operator = new pg.Client({ connectionString: db.url });
  operator.on('error', () => undefined);
  await operator.connect();
  return operator;
}

/** The pid of a session other than `operator`'s holding (or, not granted, waiting for) the advisory lock `name`. */
async function advisory(operator: pg.Client, name: string, granted: boolean): Promise<number | undefined> {
  // pg_locks shows a bigint advisory key as its high and low 32 bits, and the locks of every
  // database on the server: another test file's server or edit may hold the same name in its own.
  const key = lockKey(name);
  const rows = await operator.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $1 AND pid <> pg_backend_pid() AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = $2 AND objid = $3", [
    granted,
    Number(key >> 32n),
    Number(key & 0xffffffffn),
  ]);
  return rows.rows[0]?.pid;
}

/** Waits until a session of the server waits for the audit chain's lock, which `operator` holds; its pid. */
async function waitingForChain(operator: pg.Client): Promise<number | undefined> {
  const deadline = Date.now() + 5_000;
  let pid = await advisory(operator, 'rws:audit-chain', false);
  while (pid === undefined && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    pid = await advisory(operator, 'rws:audit-chain', false);
  }
  return pid;
}

it('survives a statement\'s answer and its session\'s end read at once, answers 503, and serves on', async () => {
  const t = await token(server, reader, { environment: 'production', key_pattern: 'KEPT' });
  const read = () => call(`${server.url}/api/v1/vault/production/KEPT`, { auth: t });
  expect((await read()).status).toBe(200);
  const operator = await operatorSession();
  const pid = server.process.pid as number;
  let stopped = false;
  try {
    // The read's commit waits for the chain's lock. With the server stopped, the lock is let go
    // (the statement's answer waits in the socket) and its session is ended (the FATAL follows):
    // once continued, the server reads both at once.
    await operator.query('SELECT pg_advisory_lock($1)', [lockKey('rws:audit-chain').toString()]);
    const reply = read();
    const session = await waitingForChain(operator);
    expect(session).toBeDefined();
    process.kill(pid, 'SIGSTOP');
    stopped = true;
    await operator.query('SELECT pg_advisory_unlock_all()');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await operator.query('SELECT pg_terminate_backend($1)', [session]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(pid, 'SIGCONT');
    stopped = false;
    const answered = await reply;
    expect([answered.status, answered.body?.error?.code]).toEqual([503, 'RWS_STATE_UNAVAILABLE']);
    expect(answered.text).not.toContain('kept-value');
  } finally {
    if (stopped) process.kill(pid, 'SIGCONT');
    await operator.end();
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(server.process.exitCode).toBeNull();
  expect(server.process.signalCode).toBeNull();
  expect((await read()).status).toBe(200);
  expect((await cli(['audit', 'verify', '--store', store.dir], { env })).exitCode).toBe(0);
}, 60_000);

it('survives the lock holder\'s session being ended mid-edit, leaves the file as it was, and edits again', async () => {
  const operator = await operatorSession();
  try {
    // The audit chain's lock, held here: the edit stages its file, then waits to record its row,
    // holding the environment's lock; its session is ended then.
    await operator.query('SELECT pg_advisory_lock($1)', [lockKey('rws:audit-chain').toString()]);
    const edit = call(secrets('/PLANTED'), { method: 'PUT', auth: admin, json: { value: 'planted-value' } });
    expect(await waitingForChain(operator)).toBeDefined();
    const pid = await advisory(operator, 'sops:production', true);
    expect(pid).toBeDefined();
    await operator.query('SELECT pg_terminate_backend($1)', [pid]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await operator.query('SELECT pg_advisory_unlock_all()');
    const reply = await edit;
    // Recorded, then refused before the file was replaced: the answer says so.
    expect(reply.status).toBe(500);
    expect(server.process.exitCode).toBeNull();
    expect(server.process.signalCode).toBeNull();
  } finally {
    await operator.end();
  }
  expect((await call(secrets(), { auth: admin })).body.names).toEqual(['KEPT']);
  expect((await call(secrets('/LATER'), { method: 'PUT', auth: admin, json: { value: 'later-value' } })).status).toBe(204);
  expect((await call(secrets(), { auth: admin })).body.names).toEqual(['KEPT', 'LATER']);
  expect(server.stderr()).not.toContain('Error: ');
}, 60_000);
