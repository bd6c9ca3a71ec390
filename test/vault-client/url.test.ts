// The vault URL is checked before any connection: plain http:// only to loopback (unless
// insecureHttp), no credentials in it, and what is printed of it is the origin only.
// Non-loopback addresses here are documentation addresses (RFC 5737) and are never connected to.
import { describe, expect, it } from 'vitest';
import { VaultClient } from '../../src/vault-client/index.js';
import { expectVaultError, makeClient } from './helpers/client.js';
import { json, withStub } from './helpers/stub.js';

const create = (baseUrl: string, insecureHttp = false) => VaultClient.create({ baseUrl, timeoutMs: 1000, retries: 0, insecureHttp });

describe('vault URL', () => {
  it.each(['http://192.0.2.1:8200', 'http://vault.example', 'http://127.0.0.1.nip.io', 'http://localhost.example.com', 'http://0.0.0.0:8200', 'http://[::2]', 'http://[::ffff:192.0.2.1]'])(
    'refuses plain %s with RWS_VAULT_INSECURE_URL',
    async (url) => {
      const error = await expectVaultError(create(url), 'RWS_VAULT_INSECURE_URL');
      expect(error.hint).toContain('--insecure-http');
    },
  );

  it.each(['http://127.0.0.1:8200', 'http://127.3.2.1', 'http://2130706433', 'http://localhost:8200', 'http://[::1]:8200', 'https://192.0.2.1', 'https://vault.example/prefix/'])('accepts %s', async (url) => {
    await (await create(url)).close();
  });

  it('accepts plain http:// elsewhere with insecureHttp (creating the client connects nowhere)', async () => {
    await (await create('http://192.0.2.1:8200', true)).close();
  });

  it('refuses credentials in the URL without printing them', async () => {
    const error = await expectVaultError(create('https://admin:hunter2-pass@vault.example'), 'RWS_VAULT_INSECURE_URL', ['hunter2', 'admin']);
    expect(error.message).toContain('https://vault.example');
  });

  it.each([
    ['not a URL (and not echoed)', `rws_sk_${'c'.repeat(32)}`],
    ['another scheme', 'ftp://vault.example'],
    ['a query', 'https://vault.example/?token=abc'],
    ['a fragment', 'https://vault.example/#abc'],
  ])('refuses %s with RWS_VAULT_INVALID_URL', async (_name, url) => {
    await expectVaultError(create(url), 'RWS_VAULT_INVALID_URL', ['c'.repeat(32), 'abc']);
  });

  it('refuses a bad timeout or retry count', async () => {
    await expect(VaultClient.create({ baseUrl: 'http://127.0.0.1', timeoutMs: 0, retries: 0, insecureHttp: false })).rejects.toMatchObject({ code: 'RWS_USAGE' });
    await expect(VaultClient.create({ baseUrl: 'http://127.0.0.1', timeoutMs: 1000, retries: -1, insecureHttp: false })).rejects.toMatchObject({ code: 'RWS_USAGE' });
  });

  it('keeps a path prefix', async () => {
    await withStub(
      (socket) => json(socket, 200, { status: 'ok' }),
      async (_t, stub) => {
        const { client } = await makeClient(`${stub.url}/vault/`);
        try {
          await client.health();
        } finally {
          await client.close();
        }
        expect(stub.requests.map((r) => r.path)).toEqual(['/vault/healthz']);
      },
    );
  });
});
