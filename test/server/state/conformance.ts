// One suite every StateStore must pass, run against SQLite and PostgreSQL alike (the way Vault's
// physical backends share sdk/physical/testing.go). `target` opens stores on one fresh database:
// two stores opened from it behave as two processes sharing that database.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { verifyChain } from '../../../src/server/audit/chain.js';
import { localChange, type AuditRecord } from '../../../src/server/audit/record.js';
import { openDriver, openState } from '../../../src/server/state/open-state.js';
import { migrate, MIGRATIONS, SCHEMA_VERSION } from '../../../src/server/state/sql/schema.js';
import type { SqlStateStore } from '../../../src/server/state/sql/sql-state-store.js';
import type { ApiKeyRecord, PresentedToken, TokenRecord } from '../../../src/server/state/state-store.js';
import { storePaths, type StorePaths } from '../../../src/server/store/layout.js';

export interface ConformanceTarget {
  /** A fresh, empty database: its URL (undefined for SQLite in the store) and how to drop it. */
  database(): Promise<{ url: string | undefined; drop(): Promise<void> }>;
}

const NOW = new Date('2030-01-01T12:00:00.000Z');
const PEPPER = 'c0nf0rmance'.repeat(6);
const SECONDS = Math.floor(NOW.getTime() / 1000);

/** Key rows are sealed under the store's pepper (grant_mac), as `init` makes one. */
export function writePepper(paths: StorePaths): Promise<void> {
  return writeFile(paths.pepper, PEPPER, { mode: 0o600 });
}

/** A distinct stand-in HMAC per key id, as the server stores one per key. */
export function hashOf(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export function key(id: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id,
    name: `key ${id}`,
    prefix: id.slice(-8),
    hash: hashOf(id),
    environments: ['prod'],
    key_patterns: ['DB_*'],
    max_ttl_minutes: null,
    created_at: NOW.toISOString(),
    expires_at: null,
    revoked_at: null,
    admin: false,
    fallback: true,
    ...overrides,
  };
}

export function tokenRecord(jti: string, apiKeyId: string, usageLimit: number | null): TokenRecord {
  return { jti, api_key_id: apiKeyId, subject: 'job', environment: 'prod', key_pattern: 'DB_*', issued_at: SECONDS, expires_at: SECONDS + 300, usage_limit: usageLimit };
}

/** The token as its holder presents it: the claims its record holds (all but the issuing key). */
export function presentedOf({ api_key_id: _issuer, ...claims }: TokenRecord): PresentedToken {
  return claims;
}

/** A token minted by `tokenRecord(jti, …, usageLimit)`, as presented. */
export const presented = (jti: string, usageLimit: number | null): PresentedToken => presentedOf(tokenRecord(jti, '', usageLimit));

export function row(event: AuditRecord['event'], status = 200, apiKeyId: string | null = null): AuditRecord {
  return { time: NOW.toISOString(), event, outcome: status < 400 ? 'success' : 'failure', status, error_code: null, api_key_id: apiKeyId, jti: null, subject: 'job', environment: 'prod', keys: ['DB_URL'], client: '127.0.0.1', count: 1 };
}

export function describeStateStore(name: string, target: ConformanceTarget): void {
  describe(`StateStore conformance: ${name}`, () => {
    let root: string;
    let paths: StorePaths;
    let url: string | undefined;
    let drop: () => Promise<void>;
    const opened: SqlStateStore[] = [];
    const open = async (options: Parameters<typeof openState>[2] = {}) => {
      const state = await openState(paths, url, options);
      opened.push(state);
      return state;
    };

    beforeEach(async () => {
      root = await mkdtemp(path.join(tmpdir(), 'rws-state-'));
      paths = storePaths(root);
      await writePepper(paths);
      ({ url, drop } = await target.database());
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((state) => state.close().catch(() => undefined)));
      await drop();
      await rm(root, { recursive: true, force: true });
    });

    it('stores, finds, lists and revokes API keys; revoking twice keeps the first time', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000a1'), localChange('apikey.create', 'ak_00000000000000a1', NOW));
      expect(await state.findApiKey(hashOf('ak_00000000000000a1'))).toEqual({ ...key('ak_00000000000000a1'), grants_intact: true });
      expect(await state.findApiKey(hashOf('ak_ffffffffffffffff'))).toBeUndefined();
      expect(await state.revokeApiKey('ak_00000000000000a1', NOW, localChange('apikey.revoke', 'ak_00000000000000a1', NOW))).toBe(true);
      const later = new Date(NOW.getTime() + 1000);
      await state.revokeApiKey('ak_00000000000000a1', later, localChange('apikey.revoke', 'ak_00000000000000a1', later));
      expect((await state.listApiKeys(NOW))[0]).toMatchObject({ id: 'ak_00000000000000a1', revoked_at: NOW.toISOString(), last_used_at: null });
      expect(await state.revokeApiKey('ak_nope', NOW, localChange('apikey.revoke', 'ak_nope', NOW))).toBe(false);
    });

    it('refuses tokens it holds no record of, and judges the ones it does', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000a2'), localChange('apikey.create', 'ak_00000000000000a2', NOW));
      expect((await state.tokenStatus(presented('never-minted-here-000', null), NOW)).outcome).toBe('unknown');
      expect(await state.commit({ effect: { kind: 'use', token: presented('never-minted-here-000', null) }, audit: () => row('secret.read') }, NOW)).toBe('unknown');
      expect(await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-a2-000000000000', 'ak_00000000000000a2', 2) }, audit: () => row('token.generate', 201) }, NOW)).toBe('ok');
      const token = presented('jti-a2-000000000000', 2);
      expect(await state.tokenStatus(token, NOW)).toEqual({ outcome: 'ok', apiKeyId: 'ak_00000000000000a2', key: { expiresAt: null, fallback: true } });
      for (const expected of ['ok', 'ok', 'exhausted', 'exhausted']) expect(await state.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read') }, NOW)).toBe(expected);
      expect((await state.tokenStatus(token, NOW)).outcome).toBe('exhausted');
      expect((await state.listApiKeys(NOW))[0]?.last_used_at).toBe(NOW.toISOString());
    });

    it('refuses a token whose claims differ from its record as one it holds no record of, and charges it nothing', async () => {
      // Anyone with the signing secret can sign a known jti with other claims: the record decides.
      // `cached` answers unlimited tokens from its cache on PostgreSQL (the same store on SQLite).
      const [plain, cached] = [await open(), await open({ cache: true })];
      await plain.addApiKey(key('ak_00000000000000a9'), localChange('apikey.create', 'ak_00000000000000a9', NOW));
      const limited = tokenRecord('jti-a9-limited-0000000', 'ak_00000000000000a9', 1);
      const unlimited = tokenRecord('jti-a9-unlimited-00000', 'ak_00000000000000a9', null);
      for (const token of [limited, unlimited]) await plain.commit({ effect: { kind: 'issue', token }, audit: () => row('token.generate', 201) }, NOW);
      const forged = (record: TokenRecord, change: Partial<PresentedToken>): PresentedToken => ({ ...presentedOf(record), ...change });
      const forgeries = [
        forged(limited, { usage_limit: null }),
        forged(limited, { usage_limit: 1000 }),
        forged(limited, { environment: 'staging', key_pattern: '*' }),
        forged(limited, { key_pattern: 'DB_PASSWORD' }),
        forged(limited, { subject: 'someone-else' }),
        forged(limited, { issued_at: limited.issued_at + 60, expires_at: limited.expires_at + 60 }),
        forged(unlimited, { environment: 'staging' }),
        forged(unlimited, { key_pattern: '*' }),
        forged(unlimited, { expires_at: unlimited.expires_at + 60 }),
        forged(unlimited, { usage_limit: 5 }),
      ];
      for (const state of [plain, cached]) {
        // The cache now holds the unlimited token's record: a forgery must be judged against it too.
        expect((await state.tokenStatus(presentedOf(unlimited), NOW)).outcome).toBe('ok');
        for (const token of forgeries) {
          expect([token, (await state.tokenStatus(token, NOW)).outcome]).toEqual([token, 'unknown']);
          expect([token, await state.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read', 401) }, NOW)]).toEqual([token, 'unknown']);
        }
      }
      expect((await plain.findToken(limited.jti))?.uses).toBe(0);
      expect((await plain.findToken(unlimited.jti))?.uses).toBe(0);
      // A forgery and the real token in one commit batch are judged apart: the real one gets the use.
      const batch = [forged(limited, { usage_limit: null }), presentedOf(limited), forged(limited, { usage_limit: 1000 })];
      expect(await Promise.all(batch.map((token) => plain.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read') }, NOW)))).toEqual(['unknown', 'ok', 'unknown']);
      expect((await plain.findToken(limited.jti))?.uses).toBe(1);
      expect((await plain.tokenStatus(presentedOf(limited), NOW)).outcome).toBe('exhausted');
      expect((await plain.tokenStatus(forged(limited, { usage_limit: null }), NOW)).outcome).toBe('unknown');
      expect(await cached.commit({ effect: { kind: 'use', token: presentedOf(unlimited) }, audit: () => row('secret.read') }, NOW)).toBe('ok');
    });

    it('ends a token with its revocation, and every token of a revoked or expired key', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000a3'), localChange('apikey.create', 'ak_00000000000000a3', NOW));
      await state.addApiKey(key('ak_00000000000000a4', { expires_at: new Date(NOW.getTime() + 60_000).toISOString() }), localChange('apikey.create', 'ak_00000000000000a4', NOW));
      for (const [jti, id] of [['jti-a3-one-0000000000', 'ak_00000000000000a3'], ['jti-a3-two-0000000000', 'ak_00000000000000a3'], ['jti-a4-one-0000000000', 'ak_00000000000000a4']] as const) {
        await state.commit({ effect: { kind: 'issue', token: tokenRecord(jti, id, null) }, audit: () => row('token.generate', 201) }, NOW);
      }
      await state.commit({ effect: { kind: 'revoke', jti: 'jti-a3-one-0000000000' }, audit: () => row('token.revoke', 204) }, NOW);
      expect((await state.tokenStatus(presented('jti-a3-one-0000000000', null), NOW)).outcome).toBe('revoked');
      expect(await state.commit({ effect: { kind: 'use', token: presented('jti-a3-one-0000000000', null) }, audit: () => row('secret.read') }, NOW)).toBe('revoked');
      expect((await state.tokenStatus(presented('jti-a3-two-0000000000', null), NOW)).outcome).toBe('ok');
      await state.revokeApiKey('ak_00000000000000a3', NOW, localChange('apikey.revoke', 'ak_00000000000000a3', NOW));
      expect((await state.tokenStatus(presented('jti-a3-two-0000000000', null), NOW)).outcome).toBe('revoked');
      expect(await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-a3-new-0000000000', 'ak_00000000000000a3', null) }, audit: () => row('token.generate', 201) }, NOW)).toBe('revoked');
      const afterExpiry = new Date(NOW.getTime() + 120_000);
      expect((await state.tokenStatus(presented('jti-a4-one-0000000000', null), afterExpiry)).outcome).toBe('revoked');
      expect(await state.commit({ effect: { kind: 'use', token: presented('jti-a4-one-0000000000', null) }, audit: () => row('secret.read') }, afterExpiry)).toBe('revoked');
    });

    it('counts uses exactly when two stores on one database race for them', async () => {
      const [a, b] = [await open(), await open()];
      await a.addApiKey(key('ak_00000000000000a5'), localChange('apikey.create', 'ak_00000000000000a5', NOW));
      await a.commit({ effect: { kind: 'issue', token: tokenRecord('jti-a5-race-000000000', 'ak_00000000000000a5', 50) }, audit: () => row('token.generate', 201) }, NOW);
      const token = presented('jti-a5-race-000000000', 50);
      const outcomes = await Promise.all(Array.from({ length: 200 }, (_, index) => (index % 2 ? a : b).commit({ effect: { kind: 'use', token }, audit: (outcome) => row('secret.read', outcome === 'ok' ? 200 : 401) }, NOW)));
      expect(outcomes.filter((outcome) => outcome === 'ok')).toHaveLength(50);
      expect(outcomes.filter((outcome) => outcome === 'exhausted')).toHaveLength(150);
      const reads = await a.queryAudit({ event: 'secret.read', limit: 1000 });
      expect(reads.filter((r) => r.outcome === 'success')).toHaveLength(50);
      expect(reads).toHaveLength(200);
    });

    it('fails no commit when two stores use several tokens in opposite orders (lock order, and one retry for a deadlock victim)', async () => {
      const [a, b] = [await open(), await open()];
      await a.addApiKey(key('ak_00000000000000a8'), localChange('apikey.create', 'ak_00000000000000a8', NOW));
      const jtis = ['jti-a8-0-00000000000', 'jti-a8-1-00000000000', 'jti-a8-2-00000000000', 'jti-a8-3-00000000000'];
      for (const [index, jti] of jtis.entries()) await a.commit({ effect: { kind: 'issue', token: tokenRecord(jti, 'ak_00000000000000a8', index % 2 ? 1000 : null) }, audit: () => row('token.generate', 201) }, NOW);
      const use = (store: SqlStateStore, jti: string, index: number) =>
        store.commit({ effect: { kind: 'use', token: presented(jti, jtis.indexOf(jti) % 2 ? 1000 : null) }, audit: () => row('secret.read', 200, `ak_${index}`) }, NOW);
      const reversed = [...jtis].reverse();
      const outcomes = await Promise.all(
        Array.from({ length: 30 }, (_, round) => [...jtis.map((jti) => use(a, jti, round)), ...reversed.map((jti) => use(b, jti, round))]).flat(),
      );
      expect(outcomes.every((outcome) => outcome === 'ok')).toBe(true);
      expect(outcomes).toHaveLength(240);
    });

    it('keeps a dense, verifiable hash chain across stores, and finds what is asked for', async () => {
      const [a, b] = [await open(), await open()];
      await Promise.all(Array.from({ length: 60 }, (_, index) => (index % 2 ? a : b).commit({ audit: () => row(index % 3 ? 'secret.batch' : 'auth.failure', index % 3 ? 200 : 401, `ak_${String(index % 4).padStart(16, '0')}`) }, NOW)));
      const check = await verifyChain((after) => a.auditAfter(after, 7));
      expect(check).toMatchObject({ ok: true, count: 60 });
      const rows = await b.auditAfter(0, 1000);
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 60 }, (_, index) => index + 1));
      expect((await a.queryAudit({ apiKeyId: 'ak_0000000000000001', limit: 1000 })).every((r) => r.api_key_id === 'ak_0000000000000001')).toBe(true);
      expect((await a.queryAudit({ outcome: 'failure', limit: 1000 })).length).toBe(20);
      const newest = await a.queryAudit({ limit: 5 });
      expect(newest.map((r) => r.seq)).toEqual([60, 59, 58, 57, 56]);
      expect((await a.queryAudit({ limit: 5, beforeSeq: 56 })).map((r) => r.seq)).toEqual([55, 54, 53, 52, 51]);
      expect(await a.queryAudit({ since: '2031-01-01T00:00:00.000Z', limit: 5 })).toEqual([]);
    });

    it('stores every row of a batch as sealed, whether its rows are alike (one token, one client) or differ in any one field', async () => {
      const state = await open();
      const alike = (index: number): AuditRecord => ({ ...row('secret.read', 200, 'ak_00000000000000b1'), time: new Date(NOW.getTime() + index).toISOString(), jti: 'jti-b1', keys: ['DB_URL', 'DB_"quoted"\\é'] });
      // Each differs from the first in one field; null where the others hold a value, and back.
      const differing: Array<Partial<AuditRecord>> = [
        { event: 'secret.list' },
        { outcome: 'failure', status: 401, error_code: 'RWS_AUTH_FAILED' },
        { status: 201 },
        { api_key_id: null },
        { jti: 'jti-b2' },
        { subject: null },
        { environment: 'staging' },
        { keys: ['DB_URL'] },
        { keys: null },
        { keys: ['DB_URL', 'DB_"quoted"\\e'] },
        { client: '::1' },
        { count: 3 },
      ];
      const batches: AuditRecord[][] = [
        Array.from({ length: 30 }, (_, index) => alike(index)),
        // Rows alike but for null fields, and a batch of one.
        Array.from({ length: 5 }, (_, index) => ({ ...alike(index), keys: null, subject: null, error_code: null })),
        [alike(0)],
        ...differing.map((change) => [alike(0), alike(1), { ...alike(2), ...change }, alike(3)]),
      ];
      for (const batch of batches) await Promise.all(batch.map((record) => state.commit({ audit: () => record }, NOW)));
      const stored = await state.auditAfter(0, 1000);
      expect(stored.map(({ seq: _seq, hash: _hash, ...record }) => record)).toEqual(batches.flat());
      expect(await verifyChain((after) => state.auditAfter(after, 50))).toMatchObject({ ok: true, count: batches.flat().length });
    });

    it('seals a row as the database keeps it: a lone surrogate in a subject still verifies (stored as U+FFFD)', async () => {
      const state = await open();
      for (const subject of ['ci-\ud800-job', '\udfff', 'pair \ud83d\ude00 kept']) await state.commit({ audit: () => ({ ...row('token.generate', 201), subject }) }, NOW);
      expect(await verifyChain((after) => state.auditAfter(after, 100))).toMatchObject({ ok: true, count: 3 });
      expect((await state.auditAfter(0, 10)).map((r) => r.subject)).toEqual(['ci-\ufffd-job', '\ufffd', 'pair \ud83d\ude00 kept']);
    });

    it('stores nothing of a commit whose audit row cannot be written: no use charged, no row', async () => {
      let fail = false;
      const state = await open({
        beforeCommit: () => {
          if (fail) throw Object.assign(new Error('disk full'), { code: 'RWS_AUDIT_UNAVAILABLE' });
        },
      });
      await state.addApiKey(key('ak_00000000000000a6'), localChange('apikey.create', 'ak_00000000000000a6', NOW));
      await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-a6-000000000000', 'ak_00000000000000a6', 1) }, audit: () => row('token.generate', 201) }, NOW);
      const before = (await state.auditAfter(0, 100)).length;
      fail = true;
      const token = presented('jti-a6-000000000000', 1);
      await expect(state.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read') }, NOW)).rejects.toMatchObject({ code: 'RWS_AUDIT_UNAVAILABLE' });
      expect((await state.auditAfter(0, 100)).length).toBe(before);
      fail = false;
      expect(await state.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read') }, NOW)).toBe('ok');
    });

    it('holds a named lock against another store until released', async () => {
      const [a, b] = [await open(), await open()];
      const order: string[] = [];
      let releaseA!: () => void;
      const aHeld = new Promise<void>((resolve) => (releaseA = resolve));
      const first = a.withLock('sops:prod', async () => {
        order.push('a in');
        await aHeld;
        order.push('a out');
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const second = b.withLock('sops:prod', async () => void order.push('b in'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      order.push('releasing');
      releaseA();
      await Promise.all([first, second]);
      expect(order).toEqual(['a in', 'releasing', 'a out', 'b in']);
    });

    it("holds a named lock against that name only: another store takes another name's lock meanwhile", async () => {
      // With SQLite, every name was one file lock: an edit of staging waited for production's.
      const [a, b] = [await open(), await open()];
      let releaseA!: () => void;
      const aHeld = new Promise<void>((resolve) => (releaseA = resolve));
      let aIn!: () => void;
      const aInside = new Promise<void>((resolve) => (aIn = resolve));
      const first = a.withLock('sops:prod', async () => {
        aIn();
        await aHeld;
      });
      await aInside;
      const order: string[] = [];
      await b.withLock('sops:staging', async () => void order.push('staging held'));
      order.push('releasing prod');
      releaseA();
      await first;
      expect(order).toEqual(['staging held', 'releasing prod']);
    });

    it('migrates once when several open at the same time, and says its version', async () => {
      const stores = await Promise.all([open(), open(), open()]);
      for (const state of stores) expect(await state.schemaVersion()).toBe(SCHEMA_VERSION);
    });

    it('migrates a database an older release left at version 1: its keys stay read keys', async () => {
      const driver = await openDriver(paths, url);
      expect(await migrate(driver, () => NOW, MIGRATIONS.slice(0, 1))).toEqual([1]);
      await driver.transaction((tx) => tx.query(
        "INSERT INTO api_keys (id, name, prefix, hash, environments, key_patterns, max_ttl_minutes, created_at, expires_at, revoked_at, last_used_at) VALUES ('ak_00000000000000c1', 'old', '000000c1', $1, '[\"prod\"]', '[\"*\"]', NULL, $2, NULL, NULL, NULL)",
        [hashOf('ak_00000000000000c1'), NOW.toISOString()],
      ));
      await driver.close();
      const state = await open();
      expect(await state.schemaVersion()).toBe(SCHEMA_VERSION);
      // Sealed by the upgrade (step 6) under the store's pepper: it still authenticates.
      expect(await state.findApiKey(hashOf('ak_00000000000000c1'))).toMatchObject({ id: 'ak_00000000000000c1', admin: false, grants_intact: true });
      await state.addApiKey(key('ak_00000000000000c2', { admin: true, environments: [], key_patterns: [] }), localChange('apikey.create', 'ak_00000000000000c2', NOW));
      expect(await state.findApiKey(hashOf('ak_00000000000000c2'))).toMatchObject({ admin: true, environments: [], key_patterns: [] });
      // Only 1 is admin: a hand-edited 2 (or -1) never grants it.
      await tamper(paths, url, "UPDATE api_keys SET admin = 2 WHERE id = 'ak_00000000000000c1'");
      expect((await state.findApiKey(hashOf('ak_00000000000000c1')))?.admin).toBe(false);
      // What is honoured is sealed: 2 reads as a read key, as sealed; 1 is an admin, as never sealed.
      expect((await state.findApiKey(hashOf('ak_00000000000000c1')))?.grants_intact).toBe(true);
      await tamper(paths, url, "UPDATE api_keys SET admin = 1 WHERE id = 'ak_00000000000000c1'");
      expect(await state.findApiKey(hashOf('ak_00000000000000c1'))).toMatchObject({ admin: true, grants_intact: false });
    });

    it('keeps a key\'s fallback flag (version 4): older keys allow the fallback, only 1 allows it, and token checks carry it with the key\'s expiry', async () => {
      const driver = await openDriver(paths, url);
      expect(await migrate(driver, () => NOW, MIGRATIONS.filter((step) => step.version < 4))).toEqual(MIGRATIONS.filter((step) => step.version < 4).map((step) => step.version));
      await driver.transaction((tx) => tx.query(
        "INSERT INTO api_keys (id, name, prefix, hash, environments, key_patterns, max_ttl_minutes, created_at, expires_at, revoked_at, last_used_at) VALUES ('ak_00000000000000f1', 'old', '000000f1', $1, '[\"prod\"]', '[\"*\"]', NULL, $2, NULL, NULL, NULL)",
        [hashOf('ak_00000000000000f1'), NOW.toISOString()],
      ));
      await driver.close();
      const state = await open();
      expect(await state.schemaVersion()).toBe(SCHEMA_VERSION);
      expect(await state.findApiKey(hashOf('ak_00000000000000f1'))).toMatchObject({ id: 'ak_00000000000000f1', fallback: true });
      const expires = new Date(NOW.getTime() + 3_600_000).toISOString();
      await state.addApiKey(key('ak_00000000000000f2', { fallback: false, expires_at: expires }), localChange('apikey.create', 'ak_00000000000000f2', NOW));
      expect(await state.findApiKey(hashOf('ak_00000000000000f2'))).toMatchObject({ fallback: false });
      expect((await state.listApiKeys(NOW)).map((k) => [k.id, k.fallback])).toEqual([['ak_00000000000000f1', true], ['ak_00000000000000f2', false]]);
      await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-f2-0000000000000', 'ak_00000000000000f2', null) }, audit: () => row('token.generate', 201) }, NOW);
      await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-f1-0000000000000', 'ak_00000000000000f1', null) }, audit: () => row('token.generate', 201) }, NOW);
      expect(await state.tokenStatus(presented('jti-f2-0000000000000', null), NOW)).toEqual({ outcome: 'ok', apiKeyId: 'ak_00000000000000f2', key: { expiresAt: expires, fallback: false } });
      expect(await state.tokenStatus(presented('jti-f1-0000000000000', null), NOW)).toEqual({ outcome: 'ok', apiKeyId: 'ak_00000000000000f1', key: { expiresAt: null, fallback: true } });
      // A hand-edited value other than 1 forbids the fallback (fail closed).
      await tamper(paths, url, "UPDATE api_keys SET fallback = 7 WHERE id = 'ak_00000000000000f1'");
      expect((await state.findApiKey(hashOf('ak_00000000000000f1')))?.fallback).toBe(false);
    });

    it('refuses at the commit a change asked for by a key revoked by another store meanwhile (liveKey)', async () => {
      const [a, b] = [await open(), await open()];
      await a.addApiKey(key('ak_00000000000000e0', { admin: true }), row('apikey.create', 0));
      const outcomes: string[] = [];
      const ask = (id: string) => a.commit({ effect: { kind: 'apikey.create', record: key(id) }, liveKey: 'ak_00000000000000e0', audit: (outcome) => (outcomes.push(outcome), row('apikey.create', 201)) }, NOW);
      expect(await ask('ak_00000000000000e1')).toBe('ok');
      expect(await b.revokeApiKey('ak_00000000000000e0', NOW, row('apikey.revoke', 0))).toBe(true);
      expect(await ask('ak_00000000000000e2')).toBe('key_revoked');
      expect(await a.commit({ liveKey: 'ak_00000000000000e0', audit: () => row('apikey.list') }, NOW)).toBe('key_revoked');
      expect(outcomes).toEqual(['ok', 'key_revoked']);
      expect(await b.getApiKey('ak_00000000000000e1', NOW)).toBeDefined();
      expect(await b.getApiKey('ak_00000000000000e2', NOW)).toBeUndefined();
      // An expired key is no longer live either.
      await a.addApiKey(key('ak_00000000000000e3', { admin: true, expires_at: new Date(NOW.getTime() - 1000).toISOString() }), row('apikey.create', 0));
      expect(await a.commit({ liveKey: 'ak_00000000000000e3', audit: () => row('apikey.list') }, NOW)).toBe('key_revoked');
    });

    it('applies admin changes with their audit rows, and lists keys and tokens with what is live', async () => {
      const state = await open();
      const adminRow = (event: AuditRecord['event']) => ({ ...row(event, 201, 'ak_00000000000000d0'), keys: null });
      await state.commit({ effect: { kind: 'apikey.create', record: key('ak_00000000000000d1') }, audit: () => adminRow('apikey.create') }, NOW);
      await state.commit({ effect: { kind: 'apikey.create', record: key('ak_00000000000000d2', { expires_at: new Date(NOW.getTime() + 60_000).toISOString() }) }, audit: () => adminRow('apikey.create') }, NOW);
      expect(await state.getApiKey('ak_00000000000000d1', NOW)).toMatchObject({ id: 'ak_00000000000000d1', admin: false, live_tokens: 0, last_used_at: null, revoked_at: null });
      expect(await state.getApiKey('ak_nope', NOW)).toBeUndefined();
      const minted = (jti: string, id: string, limit: number | null, at = NOW): TokenRecord => ({ ...tokenRecord(jti, id, limit), issued_at: Math.floor(at.getTime() / 1000) });
      const issue = (jti: string, id: string, limit: number | null, at = NOW) => state.commit({ effect: { kind: 'issue', token: minted(jti, id, limit, at) }, audit: () => row('token.generate', 201) }, at);
      await issue('jti-d1-live-000000000', 'ak_00000000000000d1', null);
      await issue('jti-d1-spent-00000000', 'ak_00000000000000d1', 1, new Date(NOW.getTime() + 1000));
      await issue('jti-d1-revoked-000000', 'ak_00000000000000d1', null, new Date(NOW.getTime() + 2000));
      await issue('jti-d2-live-000000000', 'ak_00000000000000d2', null);
      await state.commit({ effect: { kind: 'use', token: presentedOf(minted('jti-d1-spent-00000000', 'ak_00000000000000d1', 1, new Date(NOW.getTime() + 1000))) }, audit: () => row('secret.read') }, NOW);
      await state.commit({ effect: { kind: 'revoke', jti: 'jti-d1-revoked-000000' }, audit: () => adminRow('token.revoke') }, NOW);
      expect((await state.listApiKeys(NOW)).map((k) => [k.id, k.live_tokens])).toEqual([['ak_00000000000000d1', 1], ['ak_00000000000000d2', 1]]);
      const all = await state.listTokens({ now: NOW, limit: 100 });
      expect(all.map((t) => t.jti)).toEqual(['jti-d1-revoked-000000', 'jti-d1-spent-00000000', 'jti-d2-live-000000000', 'jti-d1-live-000000000']);
      expect((await state.listTokens({ now: NOW, limit: 2 })).length).toBe(2);
      expect((await state.listTokens({ now: NOW, limit: 100, apiKeyId: 'ak_00000000000000d1', active: true })).map((t) => t.jti)).toEqual(['jti-d1-live-000000000']);
      expect(await state.findToken('jti-d1-spent-00000000')).toMatchObject({ uses: 1, usage_limit: 1, revoked_at: null, subject: 'job', environment: 'prod', key_pattern: 'DB_*' });
      expect((await state.findToken('jti-d1-revoked-000000'))?.revoked_at).toBe(NOW.toISOString());
      expect(await state.findToken('jti-nope-00000000000')).toBeUndefined();
      // An expired key's tokens, and every token after its lifetime, are no longer live.
      const later = new Date(NOW.getTime() + 120_000);
      expect((await state.listTokens({ now: later, limit: 100, active: true })).map((t) => t.jti)).toEqual(['jti-d1-live-000000000']);
      expect((await state.getApiKey('ak_00000000000000d2', later))?.live_tokens).toBe(0);
      // Revoking a key ends its tokens at once.
      await state.commit({ effect: { kind: 'apikey.revoke', id: 'ak_00000000000000d1' }, audit: () => adminRow('apikey.revoke') }, NOW);
      expect((await state.tokenStatus(presented('jti-d1-live-000000000', null), NOW)).outcome).toBe('revoked');
      expect(await state.getApiKey('ak_00000000000000d1', NOW)).toMatchObject({ revoked_at: NOW.toISOString(), live_tokens: 0 });
      expect(await state.listTokens({ now: NOW, limit: 100, active: true, apiKeyId: 'ak_00000000000000d1' })).toEqual([]);
      const events = (await state.queryAudit({ apiKeyId: 'ak_00000000000000d0', limit: 100 })).map((r) => r.event);
      expect(events).toEqual(['apikey.revoke', 'token.revoke', 'apikey.create', 'apikey.create']);
      expect(await verifyChain((after) => state.auditAfter(after, 100))).toMatchObject({ ok: true });
    });

    it('keeps console sessions shared by stores: idle and hard ends, touch, sign-out, and revocation of the key end them', async () => {
      const [a, b] = [await open(), await open()];
      const admin = key('ak_00000000000000e0', { admin: true, environments: [], key_patterns: [] });
      await a.addApiKey(admin, localChange('apikey.create', admin.id, NOW));
      await a.addApiKey(key('ak_00000000000000e1'), localChange('apikey.create', 'ak_00000000000000e1', NOW));
      const session = (idHash: string, apiKeyId = admin.id) => ({ id_hash: idHash, api_key_id: apiKeyId, created_at: NOW.toISOString(), last_seen_at: NOW.toISOString(), expires_at: new Date(NOW.getTime() + 8 * 3600_000).toISOString() });
      const open1 = (idHash: string, apiKeyId?: string) => a.commit({ effect: { kind: 'session.create', session: session(idHash, apiKeyId) }, audit: () => row('console.signin', 201, apiKeyId ?? admin.id) }, NOW);
      const at = (minutes: number) => new Date(NOW.getTime() + minutes * 60_000);
      const check = (store: SqlStateStore, idHash: string, minutes: number, touch = true) => store.checkSession({ idHash, now: at(minutes), idleSince: at(minutes - 15), touch });
      expect(await open1('s1'.padEnd(64, '0'))).toBe('ok');
      // Only an admin key opens one: a read key's insert finds no live admin key.
      expect(await open1('s2'.padEnd(64, '0'), 'ak_00000000000000e1')).toBe('key_revoked');
      expect(await b.checkSession({ idHash: 's2'.padEnd(64, '0'), now: NOW, idleSince: at(-15), touch: true })).toBeUndefined();
      // Seen by the other store; a check 10 minutes later moves the idle end, a background one does not.
      expect(await check(b, 's1'.padEnd(64, '0'), 10)).toMatchObject({ api_key_id: admin.id, last_seen_at: at(10).toISOString() });
      expect(await check(b, 's1'.padEnd(64, '0'), 20, false)).toMatchObject({ last_seen_at: at(10).toISOString() });
      expect(await check(a, 's1'.padEnd(64, '0'), 24)).toBeDefined();
      // Idle for 15 minutes: ended, and a later check does not revive it.
      expect(await check(a, 's1'.padEnd(64, '0'), 39.5)).toBeUndefined();
      expect(await check(a, 's1'.padEnd(64, '0'), 40)).toBeUndefined();
      // Never past its hard end, however busy.
      await open1('s3'.padEnd(64, '0'));
      for (let minutes = 10; minutes < 480; minutes += 10) expect(await check(a, 's3'.padEnd(64, '0'), minutes)).toBeDefined();
      expect(await check(a, 's3'.padEnd(64, '0'), 480)).toBeUndefined();
      // Sign-out deletes the row; revoking the key deletes all of its sessions.
      await open1('s4'.padEnd(64, '0'));
      await open1('s5'.padEnd(64, '0'));
      await b.commit({ effect: { kind: 'session.delete', idHash: 's4'.padEnd(64, '0') }, audit: () => row('console.signout', 204, admin.id) }, NOW);
      expect(await check(a, 's4'.padEnd(64, '0'), 1)).toBeUndefined();
      expect(await check(a, 's5'.padEnd(64, '0'), 1)).toBeDefined();
      // A sign-in from the browser that held s5 ends it in the same transaction.
      expect(await b.commit({ effect: { kind: 'session.create', session: session('s7'.padEnd(64, '0')), replaces: 's5'.padEnd(64, '0') }, audit: () => row('console.signin', 201, admin.id) }, NOW)).toBe('ok');
      expect(await check(a, 's5'.padEnd(64, '0'), 1)).toBeUndefined();
      expect(await check(a, 's7'.padEnd(64, '0'), 1)).toBeDefined();
      await b.commit({ effect: { kind: 'apikey.revoke', id: admin.id }, audit: () => row('apikey.revoke', 204, admin.id) }, NOW);
      expect(await check(a, 's7'.padEnd(64, '0'), 2)).toBeUndefined();
      expect(await a.checkSession({ idHash: 's7'.padEnd(64, '0'), now: NOW, idleSince: at(-15), touch: false })).toBeUndefined();
      // An expired admin key ends its sessions too, and pruning forgets ended ones.
      const expiring = key('ak_00000000000000e2', { admin: true, environments: [], key_patterns: [], expires_at: at(5).toISOString() });
      await a.addApiKey(expiring, localChange('apikey.create', expiring.id, NOW));
      await open1('s6'.padEnd(64, '0'), expiring.id);
      // A sign-in with the revoked key is refused in its insert, and ends nothing.
      expect(await a.commit({ effect: { kind: 'session.create', session: session('s8'.padEnd(64, '0')), replaces: 's6'.padEnd(64, '0') }, audit: () => row('console.signin', 201, admin.id) }, NOW)).toBe('key_revoked');
      expect(await check(a, 's8'.padEnd(64, '0'), 1)).toBeUndefined();
      expect(await check(a, 's6'.padEnd(64, '0'), 4)).toBeDefined();
      expect(await check(a, 's6'.padEnd(64, '0'), 6)).toBeUndefined();
      await a.pruneTokens(at(481));
      expect(await countRows(paths, url, 'console_sessions')).toBe(0);
    });

    it('counts requests per minute and per ten minutes, success against failure, in the database', async () => {
      const state = await open();
      const at = (iso: string, status: number, count = 1) => ({ ...row('secret.read', status), time: iso, count });
      // The last two are after the windows asked for (a replica's clock ahead, a time edited into no time).
      const rows = [at('2030-01-01T11:58:59.999Z', 200), at('2030-01-01T11:59:00.000Z', 200), at('2030-01-01T11:59:30.000Z', 401), at('2030-01-01T11:59:59.000Z', 429, 7), at('2030-01-01T12:00:01.000Z', 200), at('2030-01-01T11:30:00.000Z', 200), at('2030-01-01T12:01:00.000Z', 200), at('zzzz', 500)];
      for (const record of rows) await state.commit({ audit: () => record }, NOW);
      // Changes made on the host are no requests: never counted.
      await state.addApiKey(key('ak_00000000000000f1'), { ...localChange('apikey.create', 'ak_00000000000000f1', NOW), time: '2030-01-01T11:59:10.000Z' });
      expect((await state.auditBuckets('2030-01-01T11:58:30.000Z', '2030-01-01T12:01:00.000Z', 1)).buckets).toEqual([
        { start: '2030-01-01T11:58:00.000Z', success: 1, failure: 0 },
        { start: '2030-01-01T11:59:00.000Z', success: 1, failure: 8 },
        { start: '2030-01-01T12:00:00.000Z', success: 1, failure: 0 },
      ]);
      expect((await state.auditBuckets('2030-01-01T00:00:00.000Z', '2030-01-01T12:01:00.000Z', 10)).buckets).toEqual([
        { start: '2030-01-01T11:30:00.000Z', success: 1, failure: 0 },
        { start: '2030-01-01T11:50:00.000Z', success: 2, failure: 8 },
        { start: '2030-01-01T12:00:00.000Z', success: 1, failure: 0 },
      ]);
      expect((await state.auditBuckets('2031-01-01T00:00:00.000Z', '2031-01-01T01:00:00.000Z', 1)).buckets).toEqual([]);
      expect((await state.auditBuckets('2030-01-01T12:01:00.000Z', '2030-01-01T12:02:00.000Z', 1)).buckets).toEqual([{ start: '2030-01-01T12:01:00.000Z', success: 1, failure: 0 }]);
    });

    it('refuses a row whose list columns were edited into something else', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000a7', { environments: ['prod'] }), localChange('apikey.create', 'ak_00000000000000a7', NOW));
      await tamper(paths, url, "UPDATE api_keys SET environments = '{\"not\":\"a list\"}'");
      await expect(state.findApiKey(hashOf('ak_00000000000000a7'))).rejects.toMatchObject({ code: 'RWS_STATE_INVALID' });
    });

    it('refuses a token whose record holds a count, a limit or a date that is no whole number, or a negative count, and charges it nothing', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000aa'), localChange('apikey.create', 'ak_00000000000000aa', NOW));
      await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-aa-000000000000', 'ak_00000000000000aa', 3) }, audit: () => row('token.generate', 201) }, NOW);
      const token = presented('jti-aa-000000000000', 3);
      await tamper(paths, url, "UPDATE tokens SET uses = -1000 WHERE jti = 'jti-aa-000000000000'");
      const damaged = (column: string) => ({ code: 'RWS_STATE_INVALID', message: expect.stringContaining(`the tokens row jti-aa-000000000000 of the state database is damaged: ${column} is not a whole number`) });
      await expect(state.tokenStatus(token, NOW)).rejects.toMatchObject(damaged('uses'));
      // Nor does a use committed without the check (a row damaged in between) spend the given-back uses.
      await expect(state.commit({ effect: { kind: 'use', token }, audit: () => row('secret.read') }, NOW)).rejects.toMatchObject(damaged('uses'));
      await expect(state.listTokens({ limit: 10, now: NOW })).rejects.toMatchObject(damaged('uses'));
      await tamper(paths, url, "UPDATE tokens SET uses = 0, usage_limit = 0 WHERE jti = 'jti-aa-000000000000'");
      await expect(state.tokenStatus(token, NOW)).rejects.toMatchObject(damaged('usage_limit'));
      await tamper(paths, url, "UPDATE tokens SET usage_limit = 3, expires_at = -1 WHERE jti = 'jti-aa-000000000000'");
      await expect(state.tokenStatus(token, NOW)).rejects.toMatchObject(damaged('expires_at'));
      // Past year 9999 no Date holds it: the listing of tokens failed with a RangeError.
      await tamper(paths, url, "UPDATE tokens SET expires_at = 9007199254740991 WHERE jti = 'jti-aa-000000000000'");
      await expect(state.listTokens({ limit: 10, now: NOW })).rejects.toMatchObject(damaged('expires_at'));
    });

    it('refuses a key whose expiry is not a time as the server writes one, and the tokens it issued, where `never` never expired', async () => {
      const state = await open();
      await state.addApiKey(key('ak_00000000000000a9'), localChange('apikey.create', 'ak_00000000000000a9', NOW));
      await state.commit({ effect: { kind: 'issue', token: tokenRecord('jti-a9-000000000000', 'ak_00000000000000a9', null) }, audit: () => row('token.generate', 201) }, NOW);
      for (const expiry of ['never', 'Jan 1 2025', '2025-01-01 00:00:00', '2026-13-01T00:00:00.000Z']) {
        await tamper(paths, url, `UPDATE api_keys SET expires_at = '${expiry}' WHERE id = 'ak_00000000000000a9'`);
        const damaged = { code: 'RWS_STATE_INVALID', message: 'the api_keys row ak_00000000000000a9 of the state database is damaged: expires_at is not a time as secrets-server writes one (such as 2030-01-31T00:00:00.000Z)' };
        await expect(state.findApiKey(hashOf('ak_00000000000000a9'))).rejects.toMatchObject(damaged);
        await expect(state.tokenStatus(presented('jti-a9-000000000000', null), NOW)).rejects.toMatchObject(damaged);
        await expect(state.listApiKeys(NOW)).rejects.toMatchObject(damaged);
      }
    });
  });
}

/** Edits the database behind the store's back, as an attacker or a careless hand would. */
/**
 * Runs `fn` while another connection holds the SQLite state's write lock (as an operator's
 * `sqlite3 state.db` inside BEGIN IMMEDIATE would): the server's writes wait out their 10 s, then 503.
 */
export async function whileStateLocked<T>(paths: StorePaths, fn: () => Promise<T>): Promise<T> {
  const { default: Sqlite } = await import('better-sqlite3');
  const db = new Sqlite(paths.stateDb);
  db.exec('BEGIN IMMEDIATE');
  try {
    return await fn();
  } finally {
    db.exec('ROLLBACK');
    db.close();
  }
}

export async function tamper(paths: StorePaths, url: string | undefined, sql: string): Promise<void> {
  if (url === undefined) {
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(paths.stateDb);
    db.exec(sql);
    db.close();
    return;
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql);
  await client.end();
}

/** How many rows a table holds, read behind the store's back. */
export async function countRows(paths: StorePaths, url: string | undefined, table: string): Promise<number> {
  if (url === undefined) {
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(paths.stateDb, { readonly: true });
    const found = db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number };
    db.close();
    return Number(found.n);
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Number((await client.query(`SELECT COUNT(*) AS n FROM ${table}`)).rows[0].n);
  } finally {
    await client.end();
  }
}
