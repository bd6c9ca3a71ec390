// A writer of the state database (a shared PostgreSQL role, a copied state.db) who holds an
// ordinary read key must not be able to raise its grants: each column the server never changes
// is sealed by an HMAC under the pepper (grant_mac), and a row that does not match it is refused
// as an unknown key. Before, `UPDATE api_keys SET admin = 1` on one's own row made an admin.
import path from 'node:path';
import { chmod, rename } from 'node:fs/promises';
import Database from 'better-sqlite3';
import pg from 'pg';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cli, cliOk, makeApiKey, makeStore, type Reply, type RunningServer, startServer, type TestStore } from '../helpers/server.js';
import { BACKENDS } from '../helpers/backends.js';

const SECRETS = { production: { DB_PASSWORD: 'key-grants-secret-value' }, staging: { DB_PASSWORD: 'key-grants-staging-value' } };
const MINT = { subject: 'job', environment: 'production', key_pattern: 'DB_*' };
/** A well-formed key no store holds: what an unknown key gets is what a raised key must get. */
const UNKNOWN_KEY = `rws_sk_${'0'.repeat(32)}`;

describe.each(BACKENDS)('API key grants on $name', (backend) => {
  let store: TestStore;
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  let server: RunningServer;

  beforeAll(async () => {
    ({ env, drop } = await backend.database());
    store = await makeStore(SECRETS);
    server = await startServer(store, ['--console'], env);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    await drop?.();
    await store?.cleanup();
  });

  /** Runs `statement` on the state database behind the server's back, as its writer would. */
  const sql = (statement: string, ...params: unknown[]) => runSql(store.dir, env, statement, ...params);

  // Each case's refusals come from an address of their own, under the limit of 401s per client.
  let client: Agent | undefined;
  let clients = 10;
  const mint = (key: string, body: Record<string, unknown> = MINT) => call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: body, dispatcher: client });
  const listKeys = (key: string) => call(`${server.url}/api/v1/auth/keys`, { auth: key, dispatcher: client });
  const batch = (token: string) => call(`${server.url}/api/v1/vault/secrets/batch`, { auth: token, json: { environment: 'production', keys: ['DB_PASSWORD'] } });
  const listed = async () => (await cliOk(['apikey', 'list', '--json', '--store', store.dir], { env })).trim().split('\n').map((line) => JSON.parse(line) as { id: string; grants_intact: boolean; admin: boolean });
  const mentions = (text: string, part: string) => text.split(part).length - 1;

  async function expectRefusedAsUnknown(key: string, id: string): Promise<void> {
    client = new Agent({ localAddress: `127.0.0.${clients++}` });
    const unknown = await mint(UNKNOWN_KEY);
    for (const reply of [await mint(key), await listKeys(key), await call(`${server.url}/api/v1/auth/self`, { auth: key, dispatcher: client })]) {
      expect([reply.status, reply.body]).toEqual([401, unknown.body]);
      expect(reply.headers.get('www-authenticate')).toBe(unknown.headers.get('www-authenticate'));
    }
    // Logged once, by the key's id; never its hash or MAC.
    const [row] = await sql('SELECT hash, grant_mac FROM api_keys WHERE id = $1', id);
    expect(mentions(server.stderr(), `error RWS_STATE_INVALID: the api_keys row ${id} of the state database does not match its grant MAC`)).toBe(1);
    expect(server.stderr()).not.toContain(String(row?.hash));
    if (row?.grant_mac) expect(server.stderr()).not.toContain(String(row.grant_mac));
    // Listed, marked, and listing does not fail.
    expect((await listed()).find((entry) => entry.id === id)).toMatchObject({ grants_intact: false });
  }

  const raises: Array<{ what: string; extra: string[]; change: string; value: unknown }> = [
    { what: 'admin', extra: [], change: 'admin = $2', value: 1 },
    { what: 'environments', extra: [], change: 'environments = $2', value: '["production","staging","*"]' },
    { what: 'key_patterns', extra: ['--key-pattern', 'OTHER_*'], change: 'key_patterns = $2', value: '["*"]' },
    { what: 'max_ttl_minutes', extra: ['--max-ttl', '1'], change: 'max_ttl_minutes = $2', value: 60 },
    { what: 'expires_at', extra: ['--expires-at', '2099-01-01'], change: 'expires_at = $2', value: null },
    { what: 'fallback', extra: ['--no-fallback'], change: 'fallback = $2', value: 1 },
    { what: 'name', extra: [], change: 'name = $2', value: 'renamed' },
  ];

  it.each(raises)('refuses a read key whose $what was raised by direct SQL as an unknown key, and logs it once', async ({ extra, change, value }) => {
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*'], extra, env);
    await sql(`UPDATE api_keys SET ${change} WHERE id = $1`, id, value);
    await expectRefusedAsUnknown(key, id);
  });

  it('refuses a read key given an admin key\'s MAC with its admin flag', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin'], env);
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
    expect((await listKeys(admin.key)).status).toBe(200);
    await sql("UPDATE api_keys SET admin = 1, environments = '[]', key_patterns = '[]', grant_mac = (SELECT grant_mac FROM api_keys WHERE id = $2) WHERE id = $1", id, admin.id);
    await expectRefusedAsUnknown(key, id);
    expect((await listKeys(admin.key)).status).toBe(200);
  });

  it('refuses a key whose MAC was emptied, whatever a later start does: no process seals a row after the upgrade', async () => {
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
    expect((await mint(key)).status).toBe(201);
    // A copy of the row under a new id, raised to admin, with no MAC: waiting for a backfill.
    await sql("INSERT INTO api_keys (id, name, prefix, hash, environments, key_patterns, max_ttl_minutes, created_at, expires_at, revoked_at, last_used_at, admin, fallback, grant_mac) SELECT 'ak_00000000000000ee', name, prefix, hash, '[]', '[]', NULL, created_at, NULL, NULL, NULL, 1, 1, NULL FROM api_keys WHERE id = $1", id);
    await sql('UPDATE api_keys SET grant_mac = NULL WHERE id = $1', id);
    await server.stop();
    server = await startServer(store, ['--console'], env);
    expect((await mint(key)).status).toBe(401);
    expect((await listKeys(key)).status).toBe(401);
    expect((await sql('SELECT COUNT(*) AS n FROM api_keys WHERE grant_mac IS NULL'))[0]?.n).toEqual(env.RWS_DATABASE_URL === undefined ? 2 : '2');
    const refused = (await listed()).filter((entry) => !entry.grants_intact).map((entry) => entry.id);
    expect(refused).toEqual(expect.arrayContaining(['ak_00000000000000ee', id]));
  });

  it('ends a console session once its admin key\'s row no longer matches its MAC', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin'], env);
    const signedIn = await call(`${server.url}/console/api/session`, { method: 'POST', auth: admin.key, headers: { origin: server.url } });
    expect(signedIn.status).toBe(201);
    const cookie = (signedIn.headers.get('set-cookie') as string).split(';')[0] as string;
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } })).status).toBe(200);
    await sql('UPDATE api_keys SET expires_at = $2 WHERE id = $1', admin.id, '2999-01-01T00:00:00.000Z');
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } })).status).toBe(401);
  });

  it('keeps a batch answer from allowing the fallback a --no-fallback key\'s row was raised to', async () => {
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*'], ['--no-fallback'], env);
    const token = (await mint(key)).body.token as string;
    await sql('UPDATE api_keys SET fallback = 1 WHERE id = $1', id);
    const answer = await batch(token);
    expect(answer.status).toBe(200);
    expect(answer.body.fallback).toEqual({ allowed: false, not_after: null });
  });

  it('judges a key\'s row once per process, a row that fails its MAC too: put back by hand, it is offered no fallback until a restart', async () => {
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
    const token = (await mint(key)).body.token as string;
    const [{ name }] = (await sql('SELECT name FROM api_keys WHERE id = $1', id)) as [{ name: string }];
    await sql("UPDATE api_keys SET name = 'renamed' WHERE id = $1", id);
    expect((await batch(token)).body.fallback).toEqual({ allowed: false, not_after: null });
    // The row as it was: a process that judged it again (a query and an HMAC on every read of
    // this key's tokens) would offer the fallback now.
    await sql('UPDATE api_keys SET name = $2 WHERE id = $1', id, name);
    const again = await batch(token);
    expect([again.status, again.body.fallback]).toEqual([200, { allowed: false, not_after: null }]);
    expect(mentions(server.stderr(), `error RWS_STATE_INVALID: the api_keys row ${id} `)).toBe(1);
    // What kept it refused is this process's verdict, not the row: a new process honours it.
    await server.stop();
    server = await startServer(store, ['--console'], env);
    expect((await batch(token)).body.fallback).toMatchObject({ allowed: true });
  });

  it('answers a read when the pepper file cannot be read, offering no fallback, and offers it once the file can be read again', async () => {
    const { key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
    const token = (await mint(key)).body.token as string;
    // A process that has not checked a key row yet: one that has keeps the seal it made then.
    await server.stop();
    server = await startServer(store, ['--console'], env);
    const pepper = path.join(store.dir, 'api-key-pepper');
    const answers: Reply[] = [];
    try {
      await rename(pepper, `${pepper}.away`);
      answers.push(await batch(token));
      await rename(`${pepper}.away`, pepper);
      await chmod(pepper, 0o644);
      answers.push(await batch(token));
    } finally {
      await rename(`${pepper}.away`, pepper).catch(() => undefined);
      await chmod(pepper, 0o600);
    }
    for (const answer of answers) {
      expect([answer.status, answer.body.secrets, answer.body.fallback]).toEqual([200, { DB_PASSWORD: 'key-grants-secret-value' }, { allowed: false, not_after: null }]);
    }
    // Not kept as a verdict: the next read looks again.
    expect((await batch(token)).body.fallback).toMatchObject({ allowed: true });
  });

  it('mints a token that ends no later than its key, so a later expiry written into the row lends it no time', async () => {
    const expires = new Date(Date.now() + 10 * 60_000);
    const { key } = await makeApiKey(store, ['production'], ['DB_*'], ['--expires-at', expires.toISOString()], env);
    const minted = await mint(key, { ...MINT, ttl_minutes: 60 });
    expect(minted.status).toBe(201);
    expect(Date.parse(minted.body.expires_at as string)).toBeLessThanOrEqual(expires.getTime());
    expect(Date.parse(minted.body.expires_at as string)).toBeGreaterThan(expires.getTime() - 2000);
  });

  it('still serves a key nobody touched', async () => {
    const { key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
    const minted = await mint(key);
    expect(minted.status).toBe(201);
    expect((await call(`${server.url}/api/v1/vault/production/DB_PASSWORD`, { auth: minted.body.token as string })).body.value).toBe('key-grants-secret-value');
  });
});

describe.each(BACKENDS)('a state database of the previous schema on $name', (backend) => {
  let store: TestStore;
  let env: Record<string, string>;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    ({ env, drop } = await backend.database());
    store = await makeStore(SECRETS);
  }, 60_000);

  afterAll(async () => {
    await drop?.();
    await store?.cleanup();
  });

  const sql = (statement: string) => runSql(store.dir, env, statement);

  /** The database as the release before migration 6 left it: its keys and no grant_mac. */
  async function setSchemaBack(): Promise<void> {
    await sql('ALTER TABLE api_keys DROP COLUMN grant_mac');
    await sql('DELETE FROM schema_migrations WHERE version = 6');
  }

  const schemaVersion = async () => JSON.parse(await cliOk(['db', 'status', '--json', '--store', store.dir], { env })).schema_version as number;

  it('seals its keys once, in the migration\'s own transaction: without the pepper nothing changes; several servers starting together then upgrade it, and its keys keep working', async () => {
    const keys = await Promise.all([0, 1, 2].map(() => makeApiKey(store, ['production'], ['DB_*'], [], env)));
    const admin = await makeApiKey(store, [], [], ['--admin'], env);
    await setSchemaBack();
    expect(await schemaVersion()).toBe(5);

    // No pepper to seal them under: refused, and the ALTER rolled back with it.
    const pepper = path.join(store.dir, 'api-key-pepper');
    await rename(pepper, `${pepper}.away`);
    const refused = await cli(['db', 'migrate', '--store', store.dir], { env });
    await rename(`${pepper}.away`, pepper);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^secrets-server: error RWS_STORE_MISSING: migration 6 seals the 4 API keys of the state database under the store's api-key-pepper, which cannot be read .*; nothing was changed/);
    expect(await schemaVersion()).toBe(5);
    expect((await sql('SELECT * FROM api_keys'))[0]).not.toHaveProperty('grant_mac');

    const servers = await Promise.all([0, 1, 2].map(() => startServer(store, [], env)));
    try {
      expect(await schemaVersion()).toBe(6);
      expect((await sql('SELECT version FROM schema_migrations WHERE version = 6')).length).toBe(1);
      expect((await sql('SELECT id FROM api_keys WHERE grant_mac IS NULL')).length).toBe(0);
      for (const [index, { key }] of keys.entries()) {
        const server = servers[index % servers.length] as RunningServer;
        expect((await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: MINT })).status).toBe(201);
      }
      expect((await call(`${servers[2]?.url}/api/v1/auth/keys`, { auth: admin.key })).status).toBe(200);
      for (const server of servers) expect(server.stderr()).not.toContain('RWS_STATE_INVALID');
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  }, 60_000);
});

describe('db migrate against PostgreSQL from a store', () => {
  it('seals under the pepper of the store it is given, which a server of that store then honours', async () => {
    const backend = BACKENDS.find((entry) => entry.name === 'PostgreSQL');
    if (backend === undefined) throw new Error('no PostgreSQL backend');
    const { env, drop } = await backend.database();
    const store = await makeStore(SECRETS);
    try {
      const { key } = await makeApiKey(store, ['production'], ['DB_*'], [], env);
      const client = new pg.Client({ connectionString: env.RWS_DATABASE_URL });
      await client.connect();
      try {
        await client.query('ALTER TABLE api_keys DROP COLUMN grant_mac');
        await client.query('DELETE FROM schema_migrations WHERE version = 6');
      } finally {
        await client.end();
      }
      // The URL as a flag, the store for its pepper: what an operator runs ahead of an upgrade.
      const out = await cliOk(['db', 'migrate', '--store', store.dir, '--database-url', env.RWS_DATABASE_URL as string]);
      expect(out).toMatch(/^applied migration 6; schema is at version 6 /);
      const server = await startServer(store, ['--console'], env);
      try {
        expect((await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: MINT })).status).toBe(201);
      } finally {
        await server.stop();
      }
    } finally {
      await drop();
      await store.cleanup();
    }
  }, 60_000);
});

/** Runs `statement` on a store's state database (SQLite, or PostgreSQL when env names one) behind its servers' backs. */
async function runSql(storeDir: string, env: Record<string, string>, statement: string, ...params: unknown[]): Promise<Array<Record<string, unknown>>> {
  if (env.RWS_DATABASE_URL === undefined) {
    const db = new Database(path.join(storeDir, 'state.db'));
    try {
      // PostgreSQL's $1 as better-sqlite3's @p1.
      const prepared = db.prepare(statement.replace(/\$(\d+)/g, '@p$1'));
      const named = Object.fromEntries(params.map((value, index) => [`p${index + 1}`, value]));
      if (prepared.reader) return prepared.all(named) as Array<Record<string, unknown>>;
      prepared.run(named);
      return [];
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: env.RWS_DATABASE_URL });
  await client.connect();
  try {
    return (await client.query(statement, params)).rows as Array<Record<string, unknown>>;
  } finally {
    await client.end();
  }
}
