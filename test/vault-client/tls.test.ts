// TLS is verified: the real server with a certificate from a test CA is refused until that CA is
// given with caFile, and then only that CA is trusted.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApiKey, makeStore, type RunningServer, startServer, type TestStore } from '../server/helpers/server.js';
import { runBin } from '../helpers/cli.js';
import { expectVaultError, makeClient } from './helpers/client.js';
import { makeCa, makeTestCa, type TestCa } from './helpers/test-ca.js';

let store: TestStore;
let server: RunningServer;
let apiKey: string;
let ca: TestCa;

beforeAll(async () => {
  store = await makeStore({ prod: { SERVICE_B_KEY: 'tls-secret-value-42' } });
  [ca, apiKey] = await Promise.all([makeTestCa(store.root), makeApiKey(store, ['prod'], ['SERVICE_*']).then((k) => k.key)]);
  server = await startServer(store, ['--tls-cert', ca.serverCert, '--tls-key', ca.serverKey]);
});
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

const request = { subject: 'tls-test', environment: 'prod', keyPattern: 'SERVICE_B_*', ttlMinutes: 1, usageLimit: 1 };

describe('TLS', () => {
  it('serves over https', () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refuses a certificate from an unknown CA with RWS_VAULT_TLS, without retrying', async () => {
    const { client, debug } = await makeClient(server.url, { retries: 2 });
    try {
      const error = await expectVaultError(client.mintToken(apiKey, request), 'RWS_VAULT_TLS', [apiKey]);
      expect(error.message).toContain(server.url);
      expect(error.hint).toContain('--ca-file');
      expect(debug.filter((line) => line.includes('attempt'))).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('still verifies with NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment', async () => {
    // Run as users run it, in a process of its own: Node's warning about the variable then goes
    // to that process's stderr, not into the test output.
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], {
      runtimeDir: store.root,
      env: { RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey, NODE_TLS_REJECT_UNAUTHORIZED: '0' },
    });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain(`error RWS_VAULT_TLS`);
    expect(result.stderr).not.toContain(apiKey);
  });

  it('works with caFile naming the test CA', async () => {
    const { client } = await makeClient(server.url, { caFile: ca.caCert });
    try {
      const { token } = await client.mintToken(apiKey, request);
      expect(Object.fromEntries(await client.fetchBatch(token, 'prod', { pattern: 'SERVICE_B_*' }))).toEqual({ SERVICE_B_KEY: 'tls-secret-value-42' });
      await client.revokeToken(token);
    } finally {
      await client.close();
    }
  });

  it('trusts only the CAs in caFile', async () => {
    const other = await makeCa(store.root, 'other-ca');
    const { client } = await makeClient(server.url, { caFile: other });
    try {
      await expectVaultError(client.health(), 'RWS_VAULT_TLS');
    } finally {
      await client.close();
    }
  });

  it('refuses a CA file that is missing or holds no certificate', async () => {
    const missing = await expectVaultError(makeClient(server.url, { caFile: path.join(store.root, 'nope.pem') }), 'RWS_VAULT_TLS');
    expect(missing.message).toContain('ENOENT');
    await expectVaultError(makeClient(server.url, { caFile: path.join(store.root, 'test-ca.key') }), 'RWS_VAULT_TLS');
  });
});
