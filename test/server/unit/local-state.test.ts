import { mkdtemp, readFile, rm, stat, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalStateStore } from '../../../src/server/state/legacy/local-state.js';
import type { ApiKeyRecord } from '../../../src/server/state/state-store.js';

let dir: string;
const files = () => ({ apiKeysFile: path.join(dir, 'api-keys.json'), stateLog: path.join(dir, 'token-state.log'), auditLog: path.join(dir, 'audit.log') });
const exp = Math.floor(Date.now() / 1000) + 600;

const record = (id: string): ApiKeyRecord => ({
  id,
  name: 'ci',
  prefix: '0123abcd',
  hash: 'a'.repeat(64),
  environments: ['production'],
  key_patterns: ['*'],
  max_ttl_minutes: null,
  created_at: new Date().toISOString(),
  expires_at: null,
  revoked_at: null,
});

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'rws-state-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('LocalStateStore', () => {
  it('counts uses exactly under concurrency and keeps them across a reopen', async () => {
    const state = await LocalStateStore.open({ ...files(), compact: true });
    const token = { jti: 'jti-aaaaaaaaaaaaaaaa', expiresAt: exp, usageLimit: 10 };
    const outcomes = await Promise.all(Array.from({ length: 100 }, () => state.consumeUse(token)));
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'exhausted')).toHaveLength(90);
    await state.close();

    const again = await LocalStateStore.open({ ...files(), compact: true });
    expect(await again.consumeUse(token)).toBe('exhausted');
    expect(await again.consumeUse({ ...token, usageLimit: 11 })).toBe('ok');
    await again.close();
  });

  it('keeps revocations across a reopen, and ends the tokens of a revoked key', async () => {
    const state = await LocalStateStore.open({ ...files(), compact: true });
    await state.addApiKey(record('ak_0000000000000001'));
    const a = { jti: 'jti-aaaaaaaaaaaaaaaa', expiresAt: exp, usageLimit: null };
    const b = { jti: 'jti-bbbbbbbbbbbbbbbb', expiresAt: exp, usageLimit: null };
    await state.recordIssue({ jti: b.jti, apiKeyId: 'ak_0000000000000001', expiresAt: exp }, new Date());
    await state.revokeToken(a);
    expect(await state.checkToken(a)).toEqual({ outcome: 'revoked', apiKeyId: null });
    expect(await state.checkToken(b)).toEqual({ outcome: 'ok', apiKeyId: 'ak_0000000000000001' });
    await state.close();

    const again = await LocalStateStore.open({ ...files(), compact: true });
    expect(await again.consumeUse(a)).toBe('revoked');
    expect(await again.revokeApiKey('ak_0000000000000001', new Date())).toBe(true);
    expect(await again.revokeApiKey('ak_ffffffffffffffff', new Date())).toBe(false);
    expect(await again.consumeUse(b)).toBe('revoked');
    const [listed] = await again.listApiKeys();
    expect(listed?.last_used_at).not.toBeNull();
    expect(listed?.revoked_at).not.toBeNull();
    await again.close();
    expect((await stat(files().apiKeysFile)).mode & 0o777).toBe(0o600);
    expect((await stat(files().stateLog)).mode & 0o777).toBe(0o600);
  });

  it('drops a half-written last line, and refuses a damaged one elsewhere', async () => {
    const state = await LocalStateStore.open({ ...files(), compact: true });
    const token = { jti: 'jti-aaaaaaaaaaaaaaaa', expiresAt: exp, usageLimit: 2 };
    expect(await state.consumeUse(token)).toBe('ok');
    await state.close();
    await appendFile(files().stateLog, '{"t":"use","jti":"jti-aaaa');
    const again = await LocalStateStore.open({ ...files(), compact: true });
    expect(await again.consumeUse(token)).toBe('ok');
    expect(await again.consumeUse(token)).toBe('exhausted');
    await again.close();
    expect(await readFile(files().stateLog, 'utf8')).not.toContain('jti-aaaa\n');

    await writeFile(files().stateLog, 'garbage\n{"t":"use","jti":"x","exp":1}\n', { mode: 0o600 });
    await expect(LocalStateStore.open({ ...files(), compact: true })).rejects.toMatchObject({ code: 'RWS_STATE_INVALID' });
  });

  it('refuses an api-keys file with unknown fields', async () => {
    await writeFile(files().apiKeysFile, JSON.stringify({ version: 1, keys: [{ ...record('ak_0000000000000001'), admin: true }] }), { mode: 0o600 });
    await expect(LocalStateStore.open(files())).rejects.toMatchObject({ code: 'RWS_STORE_INVALID' });
  });

  it('reports an unwritable audit log as RWS_AUDIT_UNAVAILABLE', async () => {
    const state = await LocalStateStore.open({ ...files(), auditLog: '/dev/full' });
    await expect(state.appendAudit('{}')).rejects.toMatchObject({ code: 'RWS_AUDIT_UNAVAILABLE' });
    await state.close();
  });
});
