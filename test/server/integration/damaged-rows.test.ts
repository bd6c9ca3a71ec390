// Rows of the state database edited by hand or damaged, as the commands and the server meet them:
// one line naming RWS_STATE_INVALID, the table, the row and the column; nothing granted by a row
// of a shape secrets-server never writes; nothing recorded where no listing would find it.
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { call, cli, makeApiKey, makeStore, startServer, type TestStore } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

const SECRETS = { production: { DB_PASSWORD: 'damaged-rows-secret-value' } };
let store: TestStore;

beforeEach(async () => {
  store = await makeStore(SECRETS);
});
afterEach(() => store.cleanup());

/** Runs `sql` on the store's state.db behind the commands' and the server's back. */
function edit(sql: string, ...params: unknown[]): void {
  const db = new Database(path.join(store.dir, 'state.db'));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

function countRows(sql: string): number {
  const db = new Database(path.join(store.dir, 'state.db'), { readonly: true });
  try {
    return (db.prepare(sql).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** One line on stderr naming the code and the damaged row, and nothing on stdout. */
function expectDamaged(result: { exitCode: number; stdout: string; stderr: string }, row: RegExp): void {
  expect(result.exitCode).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toMatch(/^secrets-server: error RWS_STATE_INVALID: /);
  expect(result.stderr).toMatch(row);
}

describe('a damaged audit head', () => {
  it('is named by audit, audit --json and audit --follow, which printed nothing and exited 0 before', async () => {
    await makeApiKey(store, ['production'], ['DB_*']);
    edit("UPDATE audit SET seq = 'abc' WHERE seq = (SELECT MAX(seq) FROM audit)");
    for (const args of [['audit'], ['audit', '--json'], ['audit', '--follow']]) {
      expectDamaged(await cli([...args, '--store', store.dir]), /the audit row abc .*: seq is not a whole number/);
    }
    const verify = await cli(['audit', 'verify', '--store', store.dir]);
    expect([verify.exitCode, verify.stdout]).toEqual([1, 'audit chain broken at seq 2: the row after 1 has a seq that is not a whole number: it was edited (1 rows before it verified)\n']);
  });

  it('refuses a server\'s commits, which sealed rows with a NULL seq that no listing ever showed', async () => {
    const { key } = await makeApiKey(store, ['production'], ['DB_*']);
    const server = await startServer(store);
    try {
      const before = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*' } });
      expect(before.status).toBe(201);
      edit("UPDATE audit SET seq = 'abc' WHERE seq = (SELECT MAX(seq) FROM audit)");
      const after = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*' } });
      expect(after.status).toBe(503);
      expect(after.body.error.code).toBe('RWS_STATE_UNAVAILABLE');
      expect(countRows('SELECT COUNT(*) AS n FROM audit WHERE seq IS NULL')).toBe(0);
      // Nor does /healthz tell a monitor this server is fine.
      const health = await call(`${server.url}/healthz`);
      expect([health.status, health.body.status]).toEqual([503, 'unavailable']);
      expect(server.stderr()).toMatch(/error RWS_STATE_INVALID: the audit row abc of the state database is damaged: seq/);
    } finally {
      await server.stop();
    }
    // Nor does a server start on it: one line, exit 1.
    const start = await cli(['serve', '--store', store.dir, '--port', '0']);
    expectDamaged(start, /the audit row abc /);
  });
});

describe('a damaged API key row', () => {
  it('mints nothing for a key whose expires_at was set to a text that is no time, where the key worked forever; apikey list names it', async () => {
    const { id, key } = await makeApiKey(store, ['production'], ['DB_*']);
    edit('UPDATE api_keys SET expires_at = ? WHERE id = ?', 'never', id);
    const server = await startServer(store);
    try {
      const reply = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*' } });
      expect(reply.status).toBe(500);
      expect(reply.body.error.code).toBe('RWS_INTERNAL');
      expect(server.stderr()).toContain(`error RWS_STATE_INVALID: the api_keys row ${id} of the state database is damaged: expires_at is not a time`);
    } finally {
      await server.stop();
    }
    expectDamaged(await cli(['apikey', 'list', '--store', store.dir]), new RegExp(`the api_keys row ${id} .*expires_at`));
  });

  it('of a token is revoked over the admin API all the same, where DELETE answered 500', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin']);
    const { key } = await makeApiKey(store, ['production'], ['DB_*']);
    const server = await startServer(store);
    try {
      const minted = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*', usage_limit: 3 } });
      const jti = minted.body.jti as string;
      edit('UPDATE tokens SET uses = -1000 WHERE jti = ?', jti);
      const read = await call(`${server.url}/api/v1/vault/production/DB_PASSWORD`, { auth: minted.body.token });
      expect([500, 503]).toContain(read.status);
      expect(read.text).not.toContain('damaged-rows-secret-value');
      const revoked = await call(`${server.url}/api/v1/vault/tokens/${jti}`, { method: 'DELETE', auth: admin.key });
      expect(revoked.status).toBe(204);
      expect(countRows(`SELECT COUNT(*) AS n FROM tokens WHERE jti = '${jti}' AND revoked_at IS NOT NULL`)).toBe(1);
      expect(server.stderr()).toContain(`error RWS_STATE_INVALID: the tokens row ${jti} of the state database is damaged: uses is not a whole number`);
    } finally {
      await server.stop();
    }
  });

  it('of a token is revoked by the token itself all the same, where POST tokens/revoke answered 500', async () => {
    const { key } = await makeApiKey(store, ['production'], ['DB_*']);
    const server = await startServer(store);
    try {
      for (const [column, value] of [['uses', -5], ['issued_at', 'yesterday']] as const) {
        const minted = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*', usage_limit: 3 } });
        const jti = minted.body.jti as string;
        edit(`UPDATE tokens SET ${column} = ? WHERE jti = ?`, value, jti);
        const revoked = await call(`${server.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: minted.body.token });
        expect([column, revoked.status]).toEqual([column, 204]);
        expect(countRows(`SELECT COUNT(*) AS n FROM tokens WHERE jti = '${jti}' AND revoked_at IS NOT NULL`)).toBe(1);
        // Revoked, it reads nothing, however its record was damaged.
        const read = await call(`${server.url}/api/v1/vault/production/DB_PASSWORD`, { auth: minted.body.token });
        expect(read.status).not.toBe(200);
        expect(read.text).not.toContain('damaged-rows-secret-value');
      }
      expect(server.stderr()).toMatch(/error RWS_STATE_INVALID: the tokens row \S+ of the state database is damaged: uses is not a whole number/);
      expect(server.stderr()).toMatch(/error RWS_STATE_INVALID: the tokens row \S+ of the state database is damaged: issued_at/);
    } finally {
      await server.stop();
    }
  });

  it('is revoked over the admin API all the same, where DELETE answered 500', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin']);
    const { id } = await makeApiKey(store, ['production'], ['DB_*']);
    edit('UPDATE api_keys SET expires_at = ? WHERE id = ?', 'never', id);
    const server = await startServer(store);
    try {
      const reply = await call(`${server.url}/api/v1/auth/keys/${id}`, { method: 'DELETE', auth: admin.key });
      expect(reply.status).toBe(204);
    } finally {
      await server.stop();
    }
    expect(countRows(`SELECT COUNT(*) AS n FROM api_keys WHERE id = '${id}' AND revoked_at IS NOT NULL`)).toBe(1);
  });
});

describe('a table or column dropped or renamed by hand', () => {
  it('is named with RWS_STATE_INVALID by commands and in a server\'s log, where each said RWS_INTERNAL (SqliteError SQLITE_ERROR)', async () => {
    const { key } = await makeApiKey(store, ['production'], ['DB_*']);
    const server = await startServer(store);
    try {
      edit('DROP TABLE tokens');
      const reply = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'job', environment: 'production', key_pattern: 'DB_*' } });
      expect(reply.status).toBe(503);
      expect(server.stderr()).toContain('secrets-server: error RWS_STATE_INVALID: the state database has no table tokens that secrets-server made (dropped or renamed by hand, or restored in part)');
    } finally {
      await server.stop();
    }
    edit('ALTER TABLE audit RENAME COLUMN event TO what');
    expectDamaged(await cli(['audit', '--event', 'apikey.create', '--store', store.dir]), /the state database has no column event that secrets-server made/);
    edit('ALTER TABLE api_keys RENAME TO keys_old');
    expectDamaged(await cli(['apikey', 'list', '--store', store.dir]), /the state database has no table api_keys that secrets-server made/);
  });

  it('says the same of PostgreSQL\'s undefined table', async () => {
    const db = await testDatabase();
    try {
      const env = { RWS_DATABASE_URL: db.url };
      await makeApiKey(store, ['production'], ['DB_*'], [], env);
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query('ALTER TABLE api_keys RENAME TO keys_old');
      await client.end();
      expectDamaged(await cli(['apikey', 'list', '--store', store.dir], { env }), /the state database has no table api_keys that secrets-server made/);
    } finally {
      await db.drop();
    }
  }, 60_000);
});

describe('audit rows stamped outside the chart\'s window', () => {
  it('make no bar of GET /api/v1/audit/chart, where a future time or one that is no time made a bar after its end', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin']);
    edit("UPDATE audit SET time = 'zzzz', status = 200 WHERE seq = 1");
    edit("UPDATE audit SET time = '2999-01-01T00:00:00.000Z', status = 200 WHERE seq = 2");
    const server = await startServer(store);
    try {
      expect((await call(`${server.url}/api/v1/auth/self`, { auth: admin.key })).status).toBe(200);
      const reply = await call(`${server.url}/api/v1/audit/chart`, { auth: admin.key });
      expect(reply.status).toBe(200);
      const bars = reply.body.buckets as Array<{ start: string; success: number }>;
      // The auth.self row's bar, and no other.
      expect(bars.map((bar) => [bar.start >= reply.body.since && bar.start < reply.body.until, bar.success])).toEqual([[true, 1]]);
    } finally {
      await server.stop();
    }
  });
});
