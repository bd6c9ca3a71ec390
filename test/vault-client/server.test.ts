// The client against the real secrets-server over plain HTTP on loopback: every call of the API,
// and every refusal mapped to its code without a credential or value in the message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApiKey, makeStore, type RunningServer, startServer, type TestStore } from '../server/helpers/server.js';
import { expectVaultError, makeClient, type TestClient } from './helpers/client.js';

const VALUES = { SERVICE_B_KEY: 'value-b-key-7f3a', SERVICE_B_URL: 'https://b.internal/9c2e', SERVICE_C_KEY: 'value-c-key-51d0' };
let store: TestStore;
let server: RunningServer;
let apiKey: string;
let narrowKey: string;
let t: TestClient;

beforeAll(async () => {
  store = await makeStore({ prod: VALUES });
  [apiKey, narrowKey] = await Promise.all([
    makeApiKey(store, ['prod'], ['SERVICE_*']).then((k) => k.key),
    makeApiKey(store, ['prod'], ['SERVICE_B_*']).then((k) => k.key),
  ]);
  server = await startServer(store);
  t = await makeClient(server.url);
});
afterAll(async () => {
  await t?.client.close();
  await server?.stop();
  await store?.cleanup();
});

const mint = (pattern: string, usageLimit = 1, key = apiKey) =>
  t.client.mintToken(key, { subject: 'vault-client-test', environment: 'prod', keyPattern: pattern, ttlMinutes: 1, usageLimit });

describe('against the real server', () => {
  it('mints a token scoped to exactly what was asked', async () => {
    const minted = await mint('SERVICE_B_*', 3);
    expect(minted.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(minted).toMatchObject({ environment: 'prod', keyPattern: 'SERVICE_B_*', usageLimit: 3 });
    expect(Date.parse(minted.expiresAt) - Date.now()).toBeGreaterThan(0);
    expect(Date.parse(minted.expiresAt) - Date.now()).toBeLessThanOrEqual(61_000);
    expect(t.debug.join('\n')).toContain('POST /api/v1/vault/tokens/generate attempt 1/1: 201');
    expect(t.debug.join('\n')).not.toContain(apiKey);
    expect(t.debug.join('\n')).not.toContain(minted.token);
  });

  it('fetches a batch by pattern and by keys, in one request each', async () => {
    const { token } = await mint('SERVICE_B_*', 2);
    const byPattern = await t.client.fetchBatch(token, 'prod', { pattern: 'SERVICE_B_*' });
    expect(Object.fromEntries(byPattern)).toEqual({ SERVICE_B_KEY: VALUES.SERVICE_B_KEY, SERVICE_B_URL: VALUES.SERVICE_B_URL });
    const byKeys = await t.client.fetchBatch(token, 'prod', { keys: ['SERVICE_B_URL'] });
    expect([...byKeys]).toEqual([['SERVICE_B_URL', VALUES.SERVICE_B_URL]]);
    // Both uses are spent now.
    const error = await expectVaultError(t.client.fetchBatch(token, 'prod', { keys: ['SERVICE_B_URL'] }), 'RWS_VAULT_AUTH', [token, ...Object.values(VALUES)]);
    expect(error.serverCode).toBe('RWS_TOKEN_EXHAUSTED');
  });

  it('fetches per key and lists names', async () => {
    const { token } = await mint('SERVICE_*', 3);
    expect(await t.client.fetchKey(token, 'prod', 'SERVICE_C_KEY')).toBe(VALUES.SERVICE_C_KEY);
    expect((await t.client.listKeys(token, 'prod')).sort()).toEqual(['SERVICE_B_KEY', 'SERVICE_B_URL', 'SERVICE_C_KEY']);
    expect(await t.client.listKeys(token, 'prod', 'SERVICE_C_*')).toEqual(['SERVICE_C_KEY']);
    expect(t.debug.join('\n')).toContain('GET /api/v1/vault/prod?pattern=SERVICE_C_* attempt 1/1: 200');
  });

  it('revokes: a second use fails with RWS_VAULT_AUTH', async () => {
    const { token } = await mint('SERVICE_*', 5);
    expect(await t.client.fetchKey(token, 'prod', 'SERVICE_B_KEY')).toBe(VALUES.SERVICE_B_KEY);
    await t.client.revokeToken(token);
    const error = await expectVaultError(t.client.fetchKey(token, 'prod', 'SERVICE_B_KEY'), 'RWS_VAULT_AUTH', [token, VALUES.SERVICE_B_KEY]);
    expect(error.serverCode).toBe('RWS_TOKEN_REVOKED');
    expect(error.hint).toContain('token');
  });

  it('revokes a token whose uses are all spent (204, idempotent)', async () => {
    const { token } = await mint('SERVICE_B_KEY', 1);
    await t.client.fetchKey(token, 'prod', 'SERVICE_B_KEY');
    await t.client.revokeToken(token);
    await t.client.revokeToken(token);
  });

  it('refuses a scope beyond the API key with RWS_VAULT_FORBIDDEN naming environment and pattern', async () => {
    const error = await expectVaultError(mint('SERVICE_*', 1, narrowKey), 'RWS_VAULT_FORBIDDEN', [narrowKey]);
    expect(error.message).toContain('environment prod');
    expect(error.message).toContain('pattern SERVICE_*');
    expect(error.hint).toContain('API key');
  });

  it('refuses keys outside the token scope with RWS_VAULT_FORBIDDEN naming them', async () => {
    const { token } = await mint('SERVICE_B_*', 2);
    const error = await expectVaultError(t.client.fetchBatch(token, 'prod', { keys: ['SERVICE_C_KEY'] }), 'RWS_VAULT_FORBIDDEN', [token, VALUES.SERVICE_C_KEY]);
    expect(error.message).toContain('key SERVICE_C_KEY');
    await expectVaultError(t.client.fetchBatch(token, 'staging', { pattern: 'SERVICE_B_*' }), 'RWS_VAULT_FORBIDDEN', [token]);
  });

  it('names a missing key with RWS_VAULT_NOT_FOUND', async () => {
    const { token } = await mint('SERVICE_*', 1);
    const error = await expectVaultError(t.client.fetchKey(token, 'prod', 'SERVICE_NOPE'), 'RWS_VAULT_NOT_FOUND', [token]);
    expect(error.message).toMatch(/^environment prod of the vault at \S+ has no key SERVICE_NOPE \(RWS_NOT_FOUND\)$/);
  });

  it('maps a wrong API key to RWS_VAULT_AUTH without echoing it', async () => {
    const wrong = `rws_sk_${'0'.repeat(32)}`;
    const error = await expectVaultError(mint('SERVICE_*', 1, wrong), 'RWS_VAULT_AUTH', [wrong]);
    expect(error.hint).toContain('API key');
    expect(error.status).toBe(401);
  });

  it('refuses a credential an HTTP header cannot carry before any request', async () => {
    const before = t.debug.length;
    await expectVaultError(mint('SERVICE_*', 1, `${apiKey}\n`), 'RWS_VAULT_AUTH', [apiKey]);
    expect(t.debug.length).toBe(before);
  });

  it('names a missing environment with RWS_VAULT_NOT_FOUND', async () => {
    const other = await makeApiKey(store, ['nowhere'], ['*']);
    const error = await expectVaultError(
      t.client.mintToken(other.key, { subject: 's', environment: 'nowhere', keyPattern: 'A', ttlMinutes: 1, usageLimit: 1 }).then((m) => t.client.listKeys(m.token, 'nowhere')),
      'RWS_VAULT_NOT_FOUND',
      [other.key],
    );
    expect(error.message).toContain('has no environment nowhere');
  });

  it('checks health', async () => {
    await t.client.health();
  });
});
