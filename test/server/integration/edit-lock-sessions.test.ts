// What a `secret set` waiting for the edit lock `sops:ENV` holds in PostgreSQL, and how it shows
// there: one connection per waiting edit (its lock session), never also its pool's idle one; a
// lock session named `secrets-server edit pid N on HOST` whatever the URL's application_name; and
// a wait whose process is gone (SIGTERM, SIGKILL) ended by the database within seconds, not left
// holding a connection until its 15 s lock_timeout.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BIN, cliOk, makeStore, type TestStore, until } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';
import { lockKey } from '../../../src/server/state/sql/driver.js';

const LOCK = lockKey('sops:production');

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let operator: pg.Client;

beforeAll(async () => {
  store = await makeStore();
  db = await testDatabase();
  operator = await operatorSession(db.url);
}, 60_000);

afterAll(async () => {
  await operator?.end();
  await db?.drop();
  await store?.cleanup();
});

async function operatorSession(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'operator console' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** `secret set production KEY` against `url`, as a process of its own. */
const edit = (url: string, key: string) =>
  execa(BIN, ['secret', 'set', 'production', key, '--store', store.dir], { input: `${key.toLowerCase()}-value`, env: { VANTA_SOPS_FILES_PATH: '', RWS_DATABASE_URL: url }, reject: false });

/** The sessions waiting for `sops:production`, with their application_name. */
async function waiters(session = operator): Promise<Array<{ pid: number; application_name: string }>> {
  const result = await session.query<{ pid: number; application_name: string }>(
    `SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND NOT l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.classid = $1 AND l.objid = $2 ORDER BY a.pid`,
    [Number(LOCK >> 32n), Number(LOCK & 0xffffffffn)],
  );
  return result.rows;
}

/** Runs `fn` while `session` holds `sops:production`. */
async function whileHeld<T>(session: pg.Client, fn: () => Promise<T>): Promise<T> {
  await session.query('SELECT pg_advisory_lock($1)', [LOCK.toString()]);
  try {
    return await fn();
  } finally {
    await session.query('SELECT pg_advisory_unlock($1)', [LOCK.toString()]);
  }
}

const names = async (url: string) => (await cliOk(['secret', 'list', 'production', '--store', store.dir], { env: { RWS_DATABASE_URL: url } })).trim().split('\n');

it('edits waiting for the lock hold one connection each: six at once under a role allowed eight connections all succeed', async () => {
  // A role of its own whose connection limit is what the edits may use: six waiting edits need
  // six, and the one that holds the lock one more for its statements (another just finishing may
  // still hold its own). Holding their pools' idle connections too, they needed twelve, and the
  // edits past the limit failed with "did not answer (53300)".
  const role = `rws_edit_${randomBytes(6).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const own = await testDatabase();
  const admin = await operatorSession(own.url);
  const database = new URL(own.url).pathname.slice(1);
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}' CONNECTION LIMIT 8`);
  try {
    await admin.query(`ALTER DATABASE ${database} OWNER TO ${role}`);
    const url = new URL(own.url);
    url.username = role;
    url.password = password;
    const roleUrl = url.toString();
    await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: 'kept-value' }), env: { RWS_DATABASE_URL: roleUrl } });
    const keys = [1, 2, 3, 4, 5, 6].map((i) => `PARALLEL_${i}`);
    const edits = await whileHeld(admin, async () => {
      const started = keys.map((key) => edit(roleUrl, key));
      await until(async () => (await waiters(admin)).length === keys.length || started.some((child) => child.exitCode !== null), 20_000);
      return started;
    });
    const results = await Promise.all(edits);
    for (const result of results) expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect((await names(roleUrl)).sort()).toEqual(['KEPT', ...keys]);
  } finally {
    await admin.end();
    await own.drop();
    await operator.query(`DROP ROLE IF EXISTS ${role}`);
  }
}, 90_000);

it("a waiting edit's lock session carries our name, whatever application_name the URL gives (kept after it), so the holder can be named", async () => {
  await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ KEPT: 'kept-value' }), env: { RWS_DATABASE_URL: db.url } });
  // In an object: returned bare, the edit (a promise) would be waited for while the lock is held.
  const { child } = await whileHeld(operator, async () => {
    const started = edit(`${db.url}?application_name=billing-prod`, 'NAMED');
    await until(async () => (await waiters()).length === 1 || started.exitCode !== null, 20_000);
    expect((await waiters()).map((session) => session.application_name)).toEqual([`secrets-server edit pid ${started.pid} on ${hostname()} (billing-prod)`.slice(0, 63)]);
    return { child: started };
  });
  const result = await child;
  expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' });
}, 60_000);

it('a waiting edit whose process is gone (SIGTERM, SIGKILL) leaves the database within seconds, not at the end of its 15 s wait', async (context) => {
  // client_connection_check_interval came with PostgreSQL 14; an older server (RWS_TEST_DATABASE_URL)
  // keeps such a session until its lock_timeout.
  const version = Number((await operator.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v);
  if (version < 140_000) return context.skip();
  await whileHeld(operator, async () => {
    const edits = [edit(db.url, 'TERMINATED'), edit(db.url, 'KILLED')];
    await until(async () => (await waiters()).length === 2 || edits.some((child) => child.exitCode !== null), 20_000);
    const sessions = (await waiters()).map((session) => session.pid);
    edits[0]?.kill('SIGTERM');
    edits[1]?.kill('SIGKILL');
    await Promise.all(edits);
    const started = Date.now();
    const gone = async () => (await operator.query('SELECT pid FROM pg_stat_activity WHERE pid = ANY($1)', [sessions])).rows.length === 0;
    while (!(await gone()) && Date.now() - started < 15_000) await new Promise((resolve) => setTimeout(resolve, 50));
    const lingered = Date.now() - started;
    console.log(`the killed edits' lock sessions lingered ${lingered} ms`);
    expect(lingered).toBeLessThan(4_000);
  });
}, 60_000);
