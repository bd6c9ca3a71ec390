// The SQLite state changed under a running server by hand: the file deleted, renamed over or
// truncated (the server must stop answering from the file it still has open), and an older
// backup restored in place (nothing revoked since the backup may be served meanwhile).
import { rename, rm, truncate } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { call, cleanedAfterEach, makeApiKey, type RunningServer, token, until } from '../helpers/server.js';

const SECRETS = { production: { SERVICE_B_KEY: 'b-key-value' } };
const read = (server: { url: string }, t: string) => call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });

/**
 * The pages of `from` written into `to` through SQLite's backup API and its locks: as
 * `sqlite3 state.db ".backup bk.db"` makes a copy, and `sqlite3 state.db ".restore bk.db"`
 * restores one into a live file.
 */
async function copyThroughSqlite(from: string, to: string): Promise<void> {
  const { default: Sqlite } = await import('better-sqlite3');
  const db = new Sqlite(from, { readonly: true });
  try {
    await db.backup(to);
  } finally {
    db.close();
  }
}

const made = cleanedAfterEach();

/** A server on a new store, a key, a token it served once, and a backup made after that (`state.db.bk`). */
async function serveAndBackUp(): Promise<{ running: RunningServer; key: string; t: string; db: string }> {
  const store = await made.store(SECRETS);
  const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
  const db = path.join(store.dir, 'state.db');
  const server = await made.serve(store);
  const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
  expect((await read(server, t)).status).toBe(200);
  await copyThroughSqlite(db, `${db}.bk`);
  return { running: server, key, t, db };
}

describe('state.db deleted, replaced or truncated while a server runs', () => {
  it.each([
    ['deleted', async (db: string) => Promise.all(['', '-wal', '-shm'].map((suffix) => rm(`${db}${suffix}`, { force: true })))],
    ['replaced', async (db: string) => rename(`${db}.bk`, db)],
    ['truncated or overwritten', async (db: string) => truncate(db, 0)],
  ] as Array<[string, (db: string) => Promise<unknown>]>)('refuses every request once the file is %s, says so once, and never serves from the old file', async (how, change) => {
    const { running, key, t, db } = await serveAndBackUp();
    await change(db);
    // The server checks the file once a second; until it has, the old file may still answer.
    const said = `state database ${db} was ${how} while this server had it open`;
    await until(async () => running.stderr().includes(said), 10_000);
    for (let i = 0; i < 5; i++) {
      const reply = await read(running, t);
      expect(reply.status).toBe(503);
      expect(reply.body.error.code).toBe('RWS_STATE_UNAVAILABLE');
    }
    const minted = await call(`${running.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'after', environment: 'production', key_pattern: 'SERVICE_B_KEY' } });
    expect(minted.status).toBe(503);
    expect((await call(`${running.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: t })).status).toBe(503);
    expect((await call(`${running.url}/healthz`)).status).toBe(503);
    // One line for the operator, however many requests were refused (and it says what to do).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(running.stderr().split(said)).toHaveLength(2);
    // Not a line per refused request either (each said `StateReplacedError RWS_STATE_UNAVAILABLE`).
    expect(running.stderr()).not.toContain('StateReplacedError');
    expect(running.stderr()).toContain('restart the server');
    expect((await read(running, t)).status).toBe(503);
  }, 60_000);
});

describe('a backup restored in place while a server runs', () => {
  it('serves nothing revoked since the backup: the first commit on the older chain is refused, and the guard revokes at once', async () => {
    const { running, key, t, db } = await serveAndBackUp();
    expect((await call(`${running.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: t })).status).toBe(204);
    expect((await read(running, t)).body.error.code).toBe('RWS_TOKEN_REVOKED');
    await copyThroughSqlite(`${db}.bk`, db);
    // Straight after the restore, before the once-a-second guard could have looked: the restored
    // rows say the token is live, but nothing is served from them.
    const replies = [];
    for (let i = 0; i < 30; i++) replies.push(await read(running, t));
    expect(replies.map((reply) => reply.status).filter((status) => status === 200)).toEqual([]);
    for (const reply of replies) expect(['RWS_STATE_UNAVAILABLE', 'RWS_TOKEN_REVOKED']).toContain(reply.body.error.code);
    await until(async () => running.stderr().includes('RWS_STATE_ROLLED_BACK'), 10_000);
    expect((await read(running, t)).body.error.code).toBe('RWS_TOKEN_REVOKED');
    // New tokens work on the restored state.
    const fresh = await token(running, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    expect((await read(running, fresh)).status).toBe(200);
  }, 60_000);
});

describe('a restored backup whose revocation fails', () => {
  it('serves nothing from the restored rows until the revocation has committed', async () => {
    const { running, t, db } = await serveAndBackUp();
    expect((await call(`${running.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: t })).status).toBe(204);
    // The restored copy refuses any change of revoked_at, so the guard's revocation of every
    // earlier token fails (again and again) while reads, which only count uses, could commit.
    const { default: Sqlite } = await import('better-sqlite3');
    const backup = new Sqlite(`${db}.bk`);
    backup.exec("CREATE TRIGGER hold_revocations BEFORE UPDATE OF revoked_at ON tokens BEGIN SELECT RAISE(ABORT, 'held by the test'); END");
    backup.close();
    await copyThroughSqlite(`${db}.bk`, db);
    // Several of the guard's once-a-second tries fail meanwhile: not one read is served.
    const statuses: number[] = [];
    const until3s = Date.now() + 3_000;
    while (Date.now() < until3s) {
      const reply = await read(running, t);
      statuses.push(reply.status);
      if (reply.status !== 200) expect(['RWS_STATE_UNAVAILABLE', 'RWS_TOKEN_REVOKED']).toContain(reply.body.error.code);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((status) => status === 200)).toEqual([]);
    expect(running.stderr()).not.toContain('RWS_STATE_ROLLED_BACK');
    // Once the revocation can commit, the guard's next try makes it, and says so.
    const live = new Sqlite(db);
    live.exec('DROP TRIGGER hold_revocations');
    live.close();
    await until(async () => running.stderr().includes('RWS_STATE_ROLLED_BACK'), 10_000);
    expect((await read(running, t)).body.error.code).toBe('RWS_TOKEN_REVOKED');
  }, 60_000);
});
