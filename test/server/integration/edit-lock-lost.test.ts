// A secrets file edit holds the environment's lock in a PostgreSQL session of its own. That
// session may end while the edit runs (a restart or failover of the database, an operator's
// pg_terminate_backend): the server must not crash (a pooled client's 'error' event with no
// listener ends the process), and the edit must not replace the file once the lock may be
// another editor's.
import { afterAll, beforeAll, expect, it } from 'vitest';
import pg from 'pg';
import { call, cliOk, makeStore, type RunningServer, startServer, type TestStore } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';
import { lockKey } from '../../../src/server/state/sql/driver.js';

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let server: RunningServer;
let admin: string;

beforeAll(async () => {
  store = await makeStore({ production: { KEPT: 'kept-value' } });
  db = await testDatabase();
  const env = { RWS_DATABASE_URL: db.url };
  admin = /^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'editor', '--admin'], { env }))?.[1] as string;
  server = await startServer(store, [], env);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  await store?.cleanup();
});

const secrets = (name = '') => `${server.url}/api/v1/admin/environments/production/secrets${name}`;

it('survives the lock holder\'s session being ended mid-edit, leaves the file as it was, and edits again', async () => {
  const operator = new pg.Client({ connectionString: db.url });
  operator.on('error', () => undefined);
  await operator.connect();
  try {
    // The audit chain's lock, held here: the edit stages its file, then waits to record its row.
    await operator.query('SELECT pg_advisory_lock($1)', [lockKey('rws:audit-chain').toString()]);
    const edit = call(secrets('/PLANTED'), { method: 'PUT', auth: admin, json: { value: 'planted-value' } });
    // pg_locks shows a bigint advisory key as its high and low 32 bits.
    const holderOf = async (name: string, granted: boolean) => {
      const key = lockKey(name);
      const rows = await operator.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted = $1 AND pid <> pg_backend_pid() AND classid = $2 AND objid = $3", [
        granted,
        Number(key >> 32n),
        Number(key & 0xffffffffn),
      ]);
      return rows.rows[0]?.pid;
    };
    // Once the edit waits to record its row, it holds the environment's lock.
    const deadline = Date.now() + 5_000;
    while ((await holderOf('rws:audit-chain', false)) === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const pid = await holderOf('sops:production', true);
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
