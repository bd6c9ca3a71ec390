// The state's commands and files: a pre-database store imported once, db migrate|status|import,
// status, audit --follow, folded 429s, the audit file sink across SIGHUP, and the database URL
// from the environment or a file (never shown with its password).
import { spawn } from 'node:child_process';
import { chmod, copyFile, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, call, cli, cliOk, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';
import { postgresControl, testDatabase } from '../../helpers/postgres.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../../src/server/state/sql/schema.js';
import Database from 'better-sqlite3';
import pg from 'pg';
import { storePaths } from '../../../src/server/store/layout.js';

const SECRETS = { production: { SERVICE_B_KEY: 'b-key-value' } };
let store: TestStore;

beforeAll(async () => {
  store = await makeStore(SECRETS);
});
afterAll(() => store.cleanup());

/**
 * A store as the file-state server left it: keys, a token state log and audit lines. `target`:
 * the store it is to be imported into, whose api-key-pepper it is given (db import refuses keys
 * stored under another pepper).
 */
async function legacyStore(target?: TestStore): Promise<{ dir: TestStore; keyId: string; key: string }> {
  const legacy = await makeStore(SECRETS);
  // A store of the file-state days had no database: the one `init` just made goes.
  const locks = (await readdir(legacy.dir)).filter((file) => file.startsWith('state-locks.'));
  for (const file of ['state.db', 'state.db-wal', 'state.db-shm', ...locks]) await rm(path.join(legacy.dir, file), { force: true });
  if (target !== undefined) await copyFile(path.join(target.dir, 'api-key-pepper'), path.join(legacy.dir, 'api-key-pepper'));
  // The pepper makes the HMAC; the record is what api-keys.json held before the database.
  const pepper = await readFile(path.join(legacy.dir, 'api-key-pepper'), 'utf8');
  const { createHmac } = await import('node:crypto');
  const key = `rws_sk_${'1a'.repeat(16)}`;
  const keyId = 'ak_00000000000000c1';
  const now = Math.floor(Date.now() / 1000);
  const record = { id: keyId, name: 'from-files', prefix: key.slice(7, 15), hash: createHmac('sha256', pepper).update(key).digest('hex'), environments: ['production'], key_patterns: ['SERVICE_B_*'], max_ttl_minutes: null, created_at: '2030-01-01T00:00:00.000Z', expires_at: null, revoked_at: null };
  await writeFile(path.join(legacy.dir, 'api-keys.json'), JSON.stringify({ version: 1, keys: [record] }), { mode: 0o600 });
  const state = [
    { t: 'issue', jti: 'legacy-live-token-0001', key: keyId, exp: now + 600, at: new Date().toISOString() },
    { t: 'use', jti: 'legacy-live-token-0001', exp: now + 600 },
    { t: 'issue', jti: 'legacy-revoked-token-01', key: keyId, exp: now + 600, at: new Date().toISOString() },
    { t: 'revoke', jti: 'legacy-revoked-token-01', exp: now + 600 },
  ];
  await writeFile(path.join(legacy.dir, 'token-state.log'), `${state.map((r) => JSON.stringify(r)).join('\n')}\n{"t":"use","jti":"torn`, { mode: 0o600 });
  const line = { time: '2020-01-01T00:00:00.000Z', event: 'token.generate', outcome: 'success', status: 201, error_code: null, api_key_id: keyId, jti: 'legacy-live-token-0001', subject: 'old', environment: 'production', keys: null, client: '127.0.0.1' };
  await writeFile(path.join(legacy.dir, 'audit.log'), `${JSON.stringify(line)}\n${JSON.stringify({ ...line, event: 'secret.read', keys: ['SERVICE_B_KEY'] })}\n`, { mode: 0o600 });
  return { dir: legacy, keyId, key };
}

/** api-keys.json with its one key given again, changed by `change`. */
function twice(keys: string, change: (key: Record<string, unknown>) => Record<string, unknown>): string {
  const file = JSON.parse(keys) as { version: 1; keys: Array<Record<string, unknown>> };
  return JSON.stringify({ ...file, keys: [...file.keys, change({ ...file.keys[0] })] });
}

describe('a store from before the database', () => {
  it('is imported into SQLite once, at the first command, keys, tokens and audit lines alike', async () => {
    const { dir: legacy, keyId, key } = await legacyStore();
    try {
      const listed = await cliOk(['apikey', 'list', '--json', '--store', legacy.dir]);
      expect(JSON.parse(listed.trim())).toMatchObject({ id: keyId, name: 'from-files', revoked_at: null });
      const files = await readdir(legacy.dir);
      expect(files).toEqual(expect.arrayContaining(['api-keys.json.imported', 'token-state.log.imported', 'audit.log.imported', 'state.db']));
      expect(files).not.toContain('api-keys.json');
      const rows = JSON.parse(`[${(await cliOk(['audit', '--json', '--store', legacy.dir])).trim().split('\n').join(',')}]`).reverse();
      expect(rows.map((row: { event: string }) => row.event)).toEqual(['token.generate', 'secret.read', 'state.import']);
      expect(rows[2].subject).toMatch(/^1 keys, 2 live tokens, 2 audit lines from /);
      expect((await cli(['audit', 'verify', '--store', legacy.dir])).exitCode).toBe(0);
      // The imported key works against a server, and a second start imports nothing again.
      const server = await startServer(legacy);
      try {
        expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' }) })).status).toBe(200);
      } finally {
        await server.stop();
      }
      expect((await cliOk(['audit', '--json', '--event', 'state.import', '--store', legacy.dir])).trim().split('\n')).toHaveLength(1);
    } finally {
      await legacy.cleanup();
    }
  });

  it('refuses a damaged legacy file whole, naming the line, and imports nothing', async () => {
    const { dir: legacy } = await legacyStore();
    try {
      await writeFile(path.join(legacy.dir, 'audit.log'), '{"time":"x"}\n', { mode: 0o600 });
      const result = await cli(['apikey', 'list', '--store', legacy.dir]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain('RWS_STATE_INVALID');
      expect(result.stderr).toContain('audit.log line 1');
      expect(await readdir(legacy.dir)).toContain('api-keys.json');
    } finally {
      await legacy.cleanup();
    }
  });

  it('refuses a key given twice, bytes that are not UTF-8, an expiry past year 9999, a line over 1 MiB and a file over 256 MiB, whole, in one line, importing nothing', async () => {
    const cases: Array<{ file: string; write: (file: string, keys: string) => Promise<void>; says: string }> = [
      // The second of an id was dropped without a word; of two ids with one hash only one was ever found.
      { file: 'api-keys.json', write: (file, keys) => writeFile(file, twice(keys, (copy) => ({ ...copy, name: 'second' })), { mode: 0o600 }), says: 'key 1: its id is that of key 0' },
      { file: 'api-keys.json', write: (file, keys) => writeFile(file, twice(keys, (copy) => ({ ...copy, id: 'ak_00000000000000c2' })), { mode: 0o600 }), says: 'key 1: its hash is that of key 0' },
      // Decoded, the byte became U+FFFD in the key's name.
      { file: 'api-keys.json', write: (file, keys) => writeFile(file, Buffer.concat([Buffer.from(keys.split('files')[0] as string), Buffer.from([0xff]), Buffer.from(keys.split('from-')[1] as string)]), { mode: 0o600 }), says: 'is not UTF-8 text' },
      // An expiry past year 9999: imported, it failed every listing of tokens (RangeError) and was never pruned.
      { file: 'token-state.log', write: (file) => writeFile(file, `${JSON.stringify({ t: 'issue', jti: 'legacy-far-token-0001', key: 'ak_00000000000000c1', exp: Number.MAX_SAFE_INTEGER, at: new Date().toISOString() })}\n`, { mode: 0o600 }), says: 'token-state.log line 1' },
      // A line no server wrote: parsed and stored whole, to be printed by audit.
      { file: 'audit.log', write: (file) => writeFile(file, `${JSON.stringify({ time: '2020-01-01T00:00:00.000Z', event: 'secret.read', outcome: 'success', status: 200, error_code: null, api_key_id: null, jti: null, subject: 's'.repeat(2 * 1024 * 1024), environment: null, keys: null, client: '127.0.0.1' })}\n`, { mode: 0o600 }), says: 'audit.log line 1: over 1 MiB' },
      // Past V8's longest string: every command (and serve) failed with RWS_INTERNAL (RangeError).
      { file: 'audit.log', write: (file) => writeFile(file, '', { mode: 0o600 }).then(() => truncate(file, 600 * 1024 * 1024)), says: 'is 600 MiB, over the 256 MiB a legacy file may hold' },
    ];
    for (const { file, write, says } of cases) {
      const { dir: legacy } = await legacyStore();
      try {
        const at = path.join(legacy.dir, file);
        await write(at, await readFile(path.join(legacy.dir, 'api-keys.json'), 'utf8'));
        const result = await cli(['apikey', 'list', '--store', legacy.dir]);
        expect([result.exitCode, result.stdout], says).toEqual([1, '']);
        expect(result.stderr).toMatch(/^secrets-server: error RWS_STATE_INVALID: /);
        expect(result.stderr).toContain(`${file}`);
        expect(result.stderr).toContain(says);
        expect(result.stderr).toContain('nothing was imported');
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(await readdir(legacy.dir)).toContain(file);
      } finally {
        await legacy.cleanup();
      }
    }
  }, 60_000);

  it('refuses by file and line what apikey create and the server never write, importing nothing', async () => {
    const db = await testDatabase();
    const now = Math.floor(Date.now() / 1000);
    const line = { time: '2020-01-01T00:00:00.000Z', event: 'secret.read', outcome: 'success', status: 200, error_code: null, api_key_id: 'ak_00000000000000c1', jti: null, subject: 's', environment: 'production', keys: ['SERVICE_B_KEY'], client: '127.0.0.1' };
    const lines = (...rows: object[]) => `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`;
    const cases: Array<{ file: string; text: (keys: string) => string; where: string }> = [
      // A name that would paint the terminal and fake a second row in apikey list.
      { file: 'api-keys.json', text: (keys) => keys.replace('"from-files"', JSON.stringify('evil\u001b[31mRED\u001b[0m\nFAKE-LINE ak_1111111111111111 admin')).replace('{"id"', '\n{"id"'), where: 'api-keys.json line 2' },
      { file: 'audit.log', text: () => lines(line, { ...line, time: 'not-a-date' }), where: 'audit.log line 2' },
      { file: 'audit.log', text: () => lines({ ...line, time: '9999-12-31T23:59:59.999Z' }), where: 'audit.log line 1' },
      { file: 'audit.log', text: () => lines(line, line, { ...line, subject: 'nul\u0000here' }), where: 'audit.log line 3' },
      {
        file: 'token-state.log',
        text: () => lines(...[1, 2, 3].map(() => ({ t: 'use', jti: 'legacy-live-token-0001', exp: now + 600, n: Number.MAX_SAFE_INTEGER }))),
        where: 'token-state.log line 2',
      },
    ];
    try {
      const env = { RWS_DATABASE_URL: db.url };
      for (const { file, text, where } of cases) {
        const { dir: legacy } = await legacyStore(store);
        try {
          const keys = await readFile(path.join(legacy.dir, 'api-keys.json'), 'utf8');
          await writeFile(path.join(legacy.dir, file), text(keys), { mode: 0o600 });
          const result = await cli(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env });
          expect(result.exitCode, where).toBe(1);
          expect(result.stderr).toMatch(/^secrets-server: error RWS_STATE_INVALID: /);
          expect(result.stderr).toContain(where);
          expect(result.stderr).toContain('nothing was imported');
          expect(result.stderr).not.toContain('\u001b');
          expect(result.stderr.trim().split('\n')).toHaveLength(1);
          expect(await readdir(legacy.dir)).toContain(file);
        } finally {
          await legacy.cleanup();
        }
      }
      // Nothing of any of them reached the database.
      expect((await cliOk(['apikey', 'list', '--store', store.dir], { env })).trim()).toBe('');
      expect((await cliOk(['audit', '--json', '--store', store.dir], { env })).trim()).toBe('');
    } finally {
      await db.drop();
    }
  }, 120_000);

  it('apikey list escapes control characters in a stored name, whatever put them there', async () => {
    const own = await makeStore();
    try {
      const { id } = await makeApiKey(own, ['production'], ['SERVICE_B_*']);
      const { default: Sqlite } = await import('better-sqlite3');
      const sqlite = new Sqlite(path.join(own.dir, 'state.db'));
      sqlite.prepare('UPDATE api_keys SET name = ? WHERE id = ?').run('evil\u001b[31mRED\u001b[0m\nFAKE-LINE ak_1111111111111111 admin', id);
      sqlite.close();
      const out = await cliOk(['apikey', 'list', '--store', own.dir]);
      expect(out).not.toContain('\u001b');
      expect(out.trim().split('\n')).toHaveLength(1);
      expect(out).toContain('"evil\\u001b[31mRED\\u001b[0m\\nFAKE-LINE');
    } finally {
      await own.cleanup();
    }
  });

  it('moves into PostgreSQL with db import --from-store, once', async () => {
    const { dir: legacy, keyId, key } = await legacyStore(store);
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      const out = await cliOk(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env });
      expect(out).toMatch(/^imported 1 API keys, 2 live token records and 2 audit lines from .* into postgres:\/\/.*:\*\*\*@/);
      expect(out).not.toContain(new URL(db.url).password);
      expect(JSON.parse((await cliOk(['apikey', 'list', '--json', '--store', store.dir], { env })).trim()).id).toBe(keyId);
      // Under the same pepper, the imported key authenticates on a server of this store.
      const server = await startServer(store, [], env);
      try {
        expect((await call(`${server.url}/api/v1/auth/self`, { auth: key })).status).toBe(200);
      } finally {
        await server.stop();
      }
      const again = await cli(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env });
      expect(again.exitCode).toBe(1);
      expect(again.stderr).toMatch(/RWS_STORE_MISSING|RWS_ALREADY_IMPORTED/);
    } finally {
      await db.drop();
      await legacy.cleanup();
    }
  });
});

describe('db import --from-store with another api-key-pepper', () => {
  it('is refused, naming both files and never a pepper, importing nothing: its keys would never authenticate here', async () => {
    const { dir: legacy } = await legacyStore();
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      const peppers = await Promise.all([legacy, store].map((s) => readFile(path.join(s.dir, 'api-key-pepper'), 'utf8')));
      const refused = await cli(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env });
      expect(refused.exitCode).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toBe(
        `secrets-server: error RWS_PEPPER_MISMATCH: the api-key-pepper files ${legacy.dir}/api-key-pepper and ${store.dir}/api-key-pepper differ: the 1 API key in ${legacy.dir}/api-keys.json is stored under the first and would never authenticate on a server of this store; nothing was imported (hint: give --from-store the store whose pepper this store has; or, if this store has no API keys of its own yet, copy ${legacy.dir}/api-key-pepper over ${store.dir}/api-key-pepper (0600, on every server of this store) and import again)\n`,
      );
      for (const pepper of peppers) expect(refused.stderr).not.toContain(pepper.trim());
      expect(await readdir(legacy.dir)).toContain('api-keys.json');
      expect((await cliOk(['apikey', 'list', '--store', store.dir], { env })).trim()).toBe('');

      // No pepper at all beside the keys: which one they were made under cannot be told.
      await rm(path.join(legacy.dir, 'api-key-pepper'));
      const unknown = await cli(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env });
      expect(unknown.exitCode).toBe(1);
      expect(unknown.stderr).toBe(
        `secrets-server: error RWS_PEPPER_MISMATCH: --from-store ${legacy.dir} has no api-key-pepper, so whether the 1 API key in ${legacy.dir}/api-keys.json was stored under this store's pepper (${store.dir}/api-key-pepper) cannot be told; under another, none would ever authenticate; nothing was imported (hint: copy the api-key-pepper of the store those keys were made in to ${legacy.dir}/api-key-pepper (0600): ${store.dir}/api-key-pepper if it was this store)\n`,
      );
      expect(await readdir(legacy.dir)).toContain('api-keys.json');

      // Done as the hint says (the keys were made under this store's pepper): imported.
      await copyFile(path.join(store.dir, 'api-key-pepper'), path.join(legacy.dir, 'api-key-pepper'));
      expect(await cliOk(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env })).toMatch(/^imported 1 API keys/);
    } finally {
      await db.drop();
      await legacy.cleanup();
    }
  });

  it('a source with no API keys (token and audit logs only) needs no pepper', async () => {
    const { dir: legacy } = await legacyStore();
    const db = await testDatabase();
    try {
      await rm(path.join(legacy.dir, 'api-keys.json'));
      await rm(path.join(legacy.dir, 'api-key-pepper'));
      const out = await cliOk(['db', 'import', '--from-store', legacy.dir, '--store', store.dir], { env: { RWS_DATABASE_URL: db.url } });
      expect(out).toMatch(/^imported 0 API keys, 2 live token records and 2 audit lines/);
    } finally {
      await db.drop();
      await legacy.cleanup();
    }
  });
});

describe('db import into SQLite', () => {
  it('imports the store\'s own files and says so, where the import at start used to take them first and it said nothing was imported', async () => {
    const { dir: legacy, keyId } = await legacyStore();
    try {
      const out = await cli(['db', 'import', '--from-store', legacy.dir, '--store', legacy.dir]);
      expect(out.stderr).toBe('');
      expect(out.exitCode).toBe(0);
      expect(out.stdout).toMatch(/^imported 1 API keys, 2 live token records and 2 audit lines from .* into .*state\.db\n$/);
      expect(JSON.parse((await cliOk(['apikey', 'list', '--json', '--store', legacy.dir])).trim()).id).toBe(keyId);
      expect(await readdir(legacy.dir)).toContain('api-keys.json.imported');
    } finally {
      await legacy.cleanup();
    }
  });

  it('into a store that first opened with no file state, says why nothing is imported', async () => {
    const fresh = await makeStore(SECRETS);
    const { dir: legacy } = await legacyStore(fresh);
    try {
      const out = await cli(['db', 'import', '--from-store', legacy.dir, '--store', fresh.dir]);
      expect(out.exitCode).toBe(1);
      expect(out.stderr).toMatch(/^secrets-server: error RWS_ALREADY_IMPORTED: the state at \S+state\.db is marked as imported already \(by an earlier import, or, for SQLite, by its first command finding no file state in its store\); nothing was imported \(hint: [^\n]+\)\n$/);
      expect(await readdir(legacy.dir)).toContain('api-keys.json');
    } finally {
      await fresh.cleanup();
      await legacy.cleanup();
    }
  });
});

describe('one store, two databases', () => {
  it('is no rollback: what a server saw is remembered per database', async () => {
    const local = await makeStore(SECRETS);
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      const sqliteKey = (await makeApiKey(local, ['production'], ['SERVICE_B_*'])).key;
      let server = await startServer(local);
      const t = await token(server, sqliteKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      for (let i = 0; i < 5; i++) await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      await server.stop();
      // The same store served with PostgreSQL, whose trail is shorter: not a rollback.
      const pgKey = /^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--name', 'pg', '--environment', 'production', '--key-pattern', 'SERVICE_B_*', '--store', local.dir], { env }))?.[1] as string;
      server = await startServer(local, [], env);
      try {
        const pgToken = await token(server, pgKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
        expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: pgToken })).status).toBe(200);
      } finally {
        await server.stop();
      }
      // And back to SQLite: its token still works.
      server = await startServer(local);
      try {
        expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
        expect(server.stderr()).not.toContain('RWS_STATE_ROLLED_BACK');
      } finally {
        await server.stop();
      }
    } finally {
      await db.drop();
      await local.cleanup();
    }
  });
});

describe('db and status commands', () => {
  it('migrate, status and db status say where the state is and its version; many migrate at once', async () => {
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      const results = await Promise.all(Array.from({ length: 5 }, () => cli(['db', 'migrate', '--store', store.dir], { env })));
      expect(results.map((result) => result.exitCode)).toEqual([0, 0, 0, 0, 0]);
      expect(results.filter((result) => result.stdout.startsWith(`applied migrations ${MIGRATIONS.map((m) => m.version).join(', ')}`))).toHaveLength(1);
      const status = JSON.parse(await cliOk(['db', 'status', '--json', '--store', store.dir], { env }));
      expect(status).toEqual({ kind: 'postgres', location: expect.stringContaining(':***@'), schema_version: SCHEMA_VERSION, latest_version: SCHEMA_VERSION });
      const sqlite = JSON.parse(await cliOk(['status', '--json', '--store', store.dir]));
      expect(sqlite).toMatchObject({ state: { kind: 'sqlite', location: path.join(store.dir, 'state.db'), schema_version: SCHEMA_VERSION }, environments: { production: { digest: expect.stringMatching(/^sha256:/) } } });
    } finally {
      await db.drop();
    }
  });

  it('status exits 1 while an environment is refused, with the same output, text and --json; 0 again once it is served', async () => {
    const degraded = await makeStore(SECRETS);
    try {
      const env = { SOPS_AGE_KEY_FILE: path.join(degraded.dir, 'age-identity.txt') };
      const healthy = await cli(['status', '--store', degraded.dir], { env });
      expect(healthy.exitCode).toBe(0);
      // A file that does not verify (an edit outside sops, a bad merge): never served.
      const file = path.join(degraded.dir, 'staging.enc.yaml');
      await writeFile(file, 'DB_PASSWORD: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\n', { mode: 0o600 });
      const text = await cli(['status', '--store', degraded.dir], { env });
      expect(text.exitCode).toBe(1);
      expect(text.stdout).toMatch(/^environment production: sha256:[0-9a-f]{64}\nenvironment staging: refused \(RWS_\w+\)\n$/m);
      expect(text.stdout.startsWith(healthy.stdout.replace(/\n$/, ''))).toBe(true);
      expect(text.stderr).toBe('');
      const json = await cli(['status', '--json', '--store', degraded.dir], { env });
      expect(json.exitCode).toBe(1);
      expect(json.stderr).toBe('');
      const view = JSON.parse(json.stdout);
      expect(Object.keys(view)).toEqual(['store', 'state', 'environments']);
      expect(view.environments).toEqual({ production: { digest: expect.stringMatching(/^sha256:/) }, staging: { error: expect.stringMatching(/^RWS_/) } });
      // Fixed (here: removed), the store is served whole again.
      await rm(file);
      expect((await cli(['status', '--json', '--store', degraded.dir], { env })).exitCode).toBe(0);
    } finally {
      await degraded.cleanup();
    }
  });

  it('db migrate on a database holding tables of another application says so, and changes nothing', async () => {
    const db = await testDatabase();
    const { default: pg } = await import('pg');
    const sql = async (text: string) => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        return (await client.query(text)).rows;
      } finally {
        await client.end();
      }
    };
    try {
      await sql("CREATE TABLE api_keys (id serial PRIMARY KEY, owner text); INSERT INTO api_keys (owner) VALUES ('another app')");
      const result = await cli(['db', 'migrate', '--store', store.dir], { env: { RWS_DATABASE_URL: db.url } });
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_STATE_INVALID: the state database postgres:\/\/\S+ holds tables not made by secrets-server .*\(hint: give secrets-server an empty database/);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).not.toContain('RWS_INTERNAL');
      expect(result.stderr).not.toContain(new URL(db.url).password);
      // Rolled back: none of our tables, theirs untouched.
      expect(await sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")).toEqual([{ table_name: 'api_keys' }]);
      expect(await sql('SELECT owner FROM api_keys')).toEqual([{ owner: 'another app' }]);
    } finally {
      await db.drop();
    }
  });

  it('takes the URL from RWS_DATABASE_URL_FILE only when the file is private, and never prints its password', async () => {
    const db = await testDatabase();
    try {
      const file = path.join(store.root, 'database-url');
      await writeFile(file, `${db.url}\n`, { mode: 0o600 });
      expect(JSON.parse(await cliOk(['db', 'status', '--json', '--store', store.dir], { env: { RWS_DATABASE_URL_FILE: file } })).kind).toBe('postgres');
      await chmod(file, 0o644);
      const open = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL_FILE: file } });
      expect(open.exitCode).toBe(1);
      expect(open.stderr).toContain('chmod 600');
      const password = new URL(db.url).password;
      for (const bad of ['mysql://x@y/z', 'postgres://', `postgres://u:${password}@127.0.0.1:1/none`]) {
        const result = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: bad } });
        expect(result.exitCode).not.toBe(0);
        expect(result.stderr.split('\n').filter(Boolean)).toHaveLength(result.stderr.includes('hint') ? result.stderr.split('\n').filter(Boolean).length : 1);
        expect(result.stderr).not.toContain(password);
      }
    } finally {
      await db.drop();
    }
  });
});

describe('a database that accepts no writes', () => {
  it('is said to be read-only, with where to point the URL, where it read "did not answer (25006)" and a hint about firewalls', async () => {
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      await cliOk(['db', 'migrate', '--store', store.dir], { env });
      // As a standby after a failover answers, or a database set read-only.
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query(`ALTER DATABASE ${new URL(db.url).pathname.slice(1)} SET default_transaction_read_only = on`);
      await admin.end();
      const result = await cli(['apikey', 'create', '--name', 'ro', '--admin', '--store', store.dir], { env });
      const url = new URL(db.url);
      expect([result.exitCode, result.stdout]).toEqual([1, '']);
      expect(result.stderr).toMatch(
        new RegExp(
          `^secrets-server: error RWS_STATE_UNAVAILABLE: the state database \\S+ is read-only \\(25006\\) \\(hint: PostgreSQL at ${url.hostname}:${url.port} accepts no writes: a standby \\(point the database URL at the primary: after a failover, the new one, or a name that follows it\\), or default_transaction_read_only is on\\)\n$`,
        ),
      );
      expect(result.stderr).not.toContain(url.password);
    } finally {
      await db.drop();
    }
  });
});

describe('a database that refuses the login, or does not exist', () => {
  it('says so, and the hint names the URL\'s user and password or its database, never the password', async () => {
    const db = await testDatabase();
    try {
      const url = new URL(db.url);
      const target = `${url.hostname}:${url.port}`;
      const wrong = Object.assign(new URL(db.url), { password: 'LEAKONE-wrong' }).toString();
      const refused = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: wrong } });
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toMatch(/^secrets-server: error RWS_STATE_UNAVAILABLE: the state database \S+ refused the login \(28P01\) \(hint: PostgreSQL at \S+ refused the login: check the user and password in the database URL, and pg_hba.conf\)\n$/);
      expect(refused.stderr).toContain(target);
      expect(refused.stderr).not.toMatch(/leakone/i);
      const missing = Object.assign(new URL(db.url), { pathname: '/no_such_database_here' }).toString();
      const absent = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: missing } });
      expect(absent.exitCode).toBe(1);
      expect(absent.stderr).toMatch(/^secrets-server: error RWS_STATE_UNAVAILABLE: the state database \S+\/no_such_database_here does not exist \(3D000\) \(hint: PostgreSQL at \S+ has no database of the URL's name: create it \(CREATE DATABASE\), or fix the URL's path\)\n$/);
      for (const result of [refused, absent]) expect(result.stderr).not.toContain(url.password);
    } finally {
      await db.drop();
    }
  });
});

describe('a database that cannot be reached', () => {
  it('status, db status, audit and audit --follow fail within seconds with one line naming RWS_STATE_UNAVAILABLE, never the password', async () => {
    const { createServer } = await import('node:net');
    // A port nothing listens on, and a listener that accepts and never says a word (a database
    // host that is frozen, or a firewall that holds connections): neither may hang a command.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const held: Array<import('node:net').Socket> = [];
    const silent = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as { port: number }).port;
    const password = encodeURIComponent('LEAKONE/@:?#%LEAKTWO');
    try {
      // Never "run secrets-server db status": db status printed that about itself.
      const refused = (): string =>
        `did not answer (ECONNREFUSED) (hint: nothing accepts connections at 127.0.0.1:${closedPort}: check the host and port of the database URL, that PostgreSQL is up and listens there (listen_addresses, port in postgresql.conf), and that no firewall rejects the connection)`;
      // Said as a timeout, with the address it could not reach: `db status` would wait the same way.
      const silence = (port: number): string =>
        `did not answer: connecting to 127.0.0.1:${port} timed out after 3 s (hint: check that 127.0.0.1:${port} is reachable from this host (a firewall or security group may drop the packets) and that PostgreSQL is up and listening there)`;
      for (const [port, said] of [[closedPort, refused()], [silentPort, silence(silentPort)]] as const) {
        const env = { RWS_DATABASE_URL: `postgres://rws:${password}@127.0.0.1:${port}/rws` };
        for (const command of [['status'], ['status', '--json'], ['db', 'status'], ['db', 'status', '--json'], ['audit'], ['audit', '--follow']]) {
          const started = Date.now();
          const result = await cli([...command, '--store', store.dir], { env });
          const took = Date.now() - started;
          const what = `${command.join(' ')} on port ${port}`;
          expect(result.exitCode, what).toBe(1);
          expect(result.stdout, what).toBe('');
          expect(result.stderr, what).toBe(`secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgres://rws:***@127.0.0.1:${port}/rws ${said}\n`);
          expect(result.stderr, what).not.toMatch(/leakone|leaktwo/i);
          expect(result.stderr, what).not.toContain('db status');
          // The connect timeout is 3 s; a hang would run into the test's own timeout.
          expect(took, what).toBeLessThan(10_000);
        }
      }
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 120_000);
});

describe('a socket directory URL (empty host, the host in the query)', () => {
  // Every piece of the password is a marker: a leak of any fragment is seen.
  const hostile = 'LEAKONE/@:?#%LEAKTWO%2F &LEAKTHREE';
  const leaked = /leakone|leaktwo|leakthree/i;

  it('is shown with its password masked, on stdout and in errors, whatever the password holds', async () => {
    const db = await testDatabase();
    const { default: pg } = await import('pg');
    const admin = new URL(db.url);
    const role = `rws_hostile_${Date.now().toString(36)}`;
    const asAdmin = async (database: string, text: string) => {
      const client = new pg.Client({ connectionString: Object.assign(new URL(db.url), { pathname: `/${database}` }).toString() });
      await client.connect();
      try {
        await client.query(text);
      } finally {
        await client.end();
      }
    };
    const database = admin.pathname.slice(1);
    await asAdmin('postgres', `CREATE ROLE ${role} LOGIN PASSWORD '${hostile}'; ALTER DATABASE ${database} OWNER TO ${role}`);
    try {
      // As libpq and node-postgres read it: no host before the path, the host (a socket
      // directory, or here the test server's address) and port in the query.
      const url = `postgresql://${role}:${encodeURIComponent(hostile)}@/${database}?host=${admin.hostname}&port=${admin.port}`;
      const shown = `postgresql://${role}:***@/${database}?host=${admin.hostname}&port=${admin.port}`;
      const env = { RWS_DATABASE_URL: url };
      const status = await cli(['db', 'status', '--json', '--store', store.dir], { env });
      expect(status.exitCode).toBe(0);
      expect(JSON.parse(status.stdout).location).toBe(shown);
      const text = await cli(['status', '--store', store.dir], { env });
      expect(text.stdout).toContain(`state: postgres ${shown}, schema version`);
      for (const result of [status, text]) expect(result.stdout + result.stderr).not.toMatch(leaked);

      // A socket directory that is not there: the error names the URL, masked.
      const missing = path.join(store.root, 'no-socket-here');
      for (const password of [encodeURIComponent(hostile), 'LEAKONE@LEAKTWO:LEAKTHREE', 'LEAKONE%LEAKTWO', 'LEAKONE%2FLEAKTWO']) {
        const failed = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: `postgresql://rws:${password}@/rws?host=${missing}` } });
        expect(failed.exitCode).toBe(1);
        expect(failed.stderr).toBe(`secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgresql://rws:***@/rws?host=${missing} did not answer (ENOENT) (hint: there is no PostgreSQL socket ${missing}/.s.PGSQL.5432: check the socket directory (host=) and port of the database URL, and that PostgreSQL is up)\n`);
      }
      // A raw `/`, `?` or `#` in the password: where it ends is a guess, so the URL is not shown.
      for (const password of ['LEAKONE/LEAKTWO', 'LEAKONE?host=/tmp#LEAKTWO', '5/LEAKONE', '5?host=/LEAKONE']) {
        const failed = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: `postgresql://rws:${password}@/rws?host=${missing}` } });
        expect(failed.exitCode, password).not.toBe(0);
        expect(failed.stderr.trim().split('\n')).toHaveLength(1);
        expect(failed.stdout + failed.stderr).not.toMatch(leaked);
      }
    } finally {
      await db.drop();
      await asAdmin('postgres', `DROP ROLE IF EXISTS ${role}`);
    }
  }, 60_000);
});

describe('a database URL on the command line', () => {
  const url = (password: string) => `postgres://postgres:${password}@127.0.0.1:1/rws`;

  it('given twice is a usage error on every command that takes it, naming no URL', async () => {
    const commands = [['db', 'status'], ['db', 'migrate'], ['db', 'import', '--from-store', store.dir], ['apikey', 'list'], ['audit'], ['audit', 'verify'], ['status'], ['secret', 'list', 'production'], ['serve', '--port', '0']];
    for (const command of commands) {
      // Both the spaced and the = forms, in either order.
      const result = await cli([...command, '--store', store.dir, '--database-url', url('LEAKMEa'), `--database-url=${url('LEAKMEb')}`]);
      expect(result.exitCode, command.join(' ')).toBe(2);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_USAGE: --database-url is given more than once/);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr + result.stdout).not.toMatch(/LEAKME|postgres:\/\//);
    }
  });

  it('that cannot be parsed is a usage error naming no part of it, never an internal error', async () => {
    for (const bad of ['postgres://u:LEAKMEport@127.0.0.1:notaport/rws', 'postgres://u:LEAKMEbracket@[::1/rws']) {
      for (const command of [['db', 'status'], ['apikey', 'list'], ['serve', '--port', '0']]) {
        const result = await cli([...command, '--store', store.dir], { env: { RWS_DATABASE_URL: bad } });
        expect(result.exitCode, `${command.join(' ')} ${bad}`).toBe(2);
        expect(result.stderr).toMatch(/^secrets-server: error RWS_USAGE: the database URL is not a valid URL/);
        expect(result.stderr + result.stdout).not.toMatch(/LEAKME|RWS_INTERNAL/);
      }
    }
  });

  it('as a stray argument is echoed without its password, however it is spelled', async () => {
    const stray = [url('LEAKMEpos'), 'postgres://u:LEAKME x@db.internal/rws', 'postgres://u:LEAKME@at@db.internal/rws', 'https://u:LEAKMEhttps@example.com/'];
    for (const word of stray) {
      const result = await cli(['db', 'status', '--store', store.dir, word]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('Unknown argument');
      expect(result.stderr).toContain(':***@');
      expect(result.stderr).not.toContain('LEAKME');
    }
    // A flag's value that yargs quotes back, on one line.
    const quoted = await cli(['audit', '--store', store.dir, '--outcome', url('LEAKMEchoice')]);
    expect(quoted.exitCode).toBe(2);
    expect(quoted.stderr).toContain('postgres://postgres:***@127.0.0.1:1/rws');
    expect(quoted.stderr).not.toContain('LEAKME');
    expect(quoted.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('audit', () => {
  it('--follow streams new rows as JSON lines, filtered', async () => {
    const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    const server = await startServer(store);
    const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
    const follower = spawn(BIN, ['audit', '--follow', '--event', 'secret.read', '--limit', '1', '--store', store.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const lines = () => out.split('\n').filter(Boolean);
    try {
      // Its first line (the newest matching row) says it is listening.
      await until(async () => lines().length >= 1, 15_000);
      for (let i = 0; i < 3; i++) await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      await until(async () => lines().length >= 4, 10_000);
      const fresh = lines().slice(1).map((line) => JSON.parse(line));
      expect(fresh.map((row) => row.event)).toEqual(['secret.read', 'secret.read', 'secret.read']);
      expect(fresh[1].seq).toBe(fresh[0].seq + 1);
      expect(out).not.toContain('b-key-value');
    } finally {
      follower.kill('SIGTERM');
      await server.stop();
    }
  });

  it('--follow ends with one line when the SQLite file it reads is deleted, replaced or truncated, where it went on reading the old file without a word', async () => {
    for (const change of ['deleted', 'replaced', 'truncated'] as const) {
      const own = await makeStore();
      try {
        await makeApiKey(own, ['production'], ['SERVICE_B_*']);
        const follower = spawn(BIN, ['audit', '--follow', '--limit', '1', '--store', own.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        follower.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
        const exited = new Promise<number | null>((resolve) => follower.once('exit', resolve));
        try {
          await until(async () => out.split('\n').filter(Boolean).length >= 1, 15_000);
          const db = path.join(own.dir, 'state.db');
          if (change === 'deleted') await rm(db);
          if (change === 'replaced') await rename(db, `${db}.old`);
          if (change === 'truncated') await writeFile(db, '');
          // Rows written at the path from now on would go to a file the follower never reads.
          const timeout = new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref());
          expect(await Promise.race([exited, timeout]), change).toBe(1);
          const lines = err.trim().split('\n');
          expect(lines, change).toHaveLength(1);
          expect(lines[0]).toMatch(new RegExp(`^secrets-server: error RWS_STATE_UNAVAILABLE: the state database ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was (deleted|replaced|truncated)[^;]* while audit --follow read it; the last row printed is seq 1 \\(hint: start audit --follow again`));
        } finally {
          follower.kill('SIGTERM');
        }
      } finally {
        await own.cleanup();
      }
    }
  }, 60_000);

  it('--follow outlives a PostgreSQL restart: one line on stderr, then every later row exactly once', async (context) => {
    const control = postgresControl();
    if (control === undefined) return context.skip();
    await control.start();
    const env = { RWS_DATABASE_URL: control.url };
    const create = (name: string) => cliOk(['apikey', 'create', '--store', store.dir, '--name', name, '--admin'], { env });
    await create('before-0');
    const follower = spawn(BIN, ['audit', '--follow', '--event', 'apikey.create', '--limit', '1', '--store', store.dir], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    follower.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const rows = () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { seq: number; subject: string });
    try {
      await until(async () => rows().length >= 1, 15_000);
      await create('before-1');
      await until(async () => rows().length >= 2, 10_000);
      await control.stopImmediate();
      await until(async () => err.includes('RWS_STATE_UNAVAILABLE'), 20_000);
      // It is still there while the database is down, and says so once.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(follower.exitCode).toBeNull();
      await control.start();
      for (let i = 0; i < 3; i++) await create(`after-${i}`);
      await until(async () => rows().length >= 5, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const subjects = rows().map((row) => row.subject);
      expect(subjects.filter((s) => s.includes('after-'))).toHaveLength(3);
      expect(subjects.slice(1).map((s) => /--name (\S+)/.exec(s)?.[1])).toEqual(['before-1', 'after-0', 'after-1', 'after-2']);
      const seqs = rows().map((row) => row.seq);
      expect(new Set(seqs).size).toBe(seqs.length);
      expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
      expect(follower.exitCode).toBeNull();
      const lines = err.split('\n').filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^secrets-server: warning RWS_STATE_UNAVAILABLE: .*resumes after seq \d+$/);
      expect(err).not.toContain(new URL(control.url).password);
      expect(err).not.toContain('postgres://');
    } finally {
      follower.kill('SIGTERM');
      await control.stopImmediate().catch(() => undefined);
    }
  }, 120_000);

  it('--follow goes back with a trail restored from an older copy: every new row after the copy is printed, the state.rollback row among them', async () => {
    const own = await makeStore(SECRETS);
    const create = (name: string) => cliOk(['apikey', 'create', '--store', own.dir, '--name', name, '--admin']);
    const statePath = storePaths(own.dir).stateDb;
    const follower = spawn(BIN, ['audit', '--follow', '--limit', '1', '--store', own.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    follower.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const rows = () => out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { seq: number; event: string; subject: string | null });
    try {
      await create('kept');
      await until(async () => rows().some((row) => row.subject?.includes('kept') ?? false), 15_000);
      // The copy a restore will bring back: the trail up to 'kept'.
      const copy = path.join(own.dir, 'copy.db');
      const live = new Database(statePath, { readonly: true });
      await live.backup(copy);
      live.close();
      const copied = Math.max(...rows().map((row) => row.seq));
      await create('lost-1');
      await create('lost-2');
      await until(async () => rows().some((row) => row.subject?.includes('lost-2') ?? false), 10_000);
      // Restored in place, as `sqlite3 state.db ".restore copy.db"` does.
      const old = new Database(copy, { readonly: true });
      await old.backup(statePath);
      old.close();
      await create('after');
      // Both rows of the new history: the follower may print them in two polls, in either order.
      await until(async () => rows().some((row) => row.event === 'state.rollback') && rows().some((row) => row.event === 'apikey.create' && (row.subject?.includes('after') ?? false)), 10_000);
      const fresh = rows().filter((row) => row.seq > copied);
      // The two rows the restore dropped, then the two of the new history with the same seqs (the
      // command that finds the rollback records it, before or after its own change).
      expect(fresh.map((row) => row.seq)).toEqual([copied + 1, copied + 2, copied + 1, copied + 2]);
      expect(fresh.slice(0, 2).map((row) => row.subject)).toEqual([expect.stringContaining('lost-1'), expect.stringContaining('lost-2')]);
      const renewed = fresh.slice(2);
      expect(renewed.filter((row) => row.event === 'state.rollback')).toHaveLength(1);
      expect(renewed.filter((row) => row.event === 'apikey.create' && (row.subject?.includes('after') ?? false))).toHaveLength(1);
      expect(err).toMatch(new RegExp(`warning RWS_STATE_ROLLED_BACK: .* goes on after seq ${copied},`));
      expect(follower.exitCode).toBeNull();
    } finally {
      follower.kill('SIGTERM');
      await own.cleanup();
    }
  }, 60_000);

  it('folds 429s into one row per address and minute, with the count', async () => {
    const server = await startServer(store);
    try {
      for (let i = 0; i < 60; i++) await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: 'not-a-token' });
    } finally {
      await server.stop();
    }
    const rows = (await cliOk(['audit', '--json', '--event', 'auth.rate_limited', '--store', store.dir])).trim().split('\n').map((line) => JSON.parse(line));
    // 21 refusals are 401s (the limit is "more than 20"), one row each; the other 39 are 429s.
    expect(rows.reduce((sum, row) => sum + row.count, 0)).toBe(39);
    expect(rows.length).toBeLessThanOrEqual(2);
    expect(rows[0]).toMatchObject({ status: 429, error_code: 'RWS_RATE_LIMITED', client: '127.0.0.1' });
  });

  it('writes the rows to --audit-log too, and after SIGHUP into a new file at the same path', async () => {
    const sink = path.join(store.root, 'audit.jsonl');
    const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    const server = await startServer(store, ['--audit-log', sink]);
    try {
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      await rename(sink, `${sink}.1`);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('audit log reopened'));
      await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      const rotated = (await readFile(`${sink}.1`, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
      const current = (await readFile(sink, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
      expect(rotated.map((row) => row.event)).toEqual(['token.generate', 'secret.read']);
      expect(current.map((row) => row.event)).toEqual(['secret.read']);
      expect(current[0].seq).toBe(rotated[1].seq + 1);
      expect(server.process.exitCode).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it('refuses an existing --audit-log others can read, at start and at SIGHUP (the old file is kept)', async () => {
    const sink = path.join(store.root, 'shared-audit.jsonl');
    await writeFile(sink, '');
    await chmod(sink, 0o644);
    const refused = await cli(['serve', '--store', store.dir, '--port', '0', '--audit-log', sink]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).not.toContain('listening');
    expect(refused.stderr).toMatch(/^secrets-server: error RWS_FILE_ACCESS: the audit log \S+shared-audit\.jsonl is readable by others \(mode 644\) \(hint: chmod 600 /);
    // Its mode is the operator's to change, not ours.
    expect((await stat(sink)).mode & 0o777).toBe(0o644);
    await chmod(sink, 0o600);
    const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    const server = await startServer(store, ['--audit-log', sink]);
    try {
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      // As logrotate with `create 0644` would leave it.
      await rename(sink, `${sink}.1`);
      await writeFile(sink, '');
      await chmod(sink, 0o644);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('kept the old audit log'));
      expect(server.stderr()).toMatch(/kept the old audit log: .*readable by others/);
      await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      const kept = (await readFile(`${sink}.1`, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
      expect(kept.map((row) => row.event)).toEqual(['token.generate', 'secret.read']);
      expect(await readFile(sink, 'utf8')).toBe('');
    } finally {
      await server.stop();
    }
  });
});
