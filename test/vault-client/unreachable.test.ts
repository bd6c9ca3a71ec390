// A server that is down: connection refused is retried with backoff, then reported with the URL
// and the number of attempts.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectVaultError, makeClient } from './helpers/client.js';

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const API_KEY = `rws_sk_${'d'.repeat(32)}`;

describe('server down', () => {
  it('retries, then reports RWS_VAULT_UNREACHABLE naming the URL and the attempts', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const { client, debug } = await makeClient(url, { retries: 2 });
    try {
      const error = await expectVaultError(
        client.mintToken(API_KEY, { subject: 's', environment: 'prod', keyPattern: 'A_*', ttlMinutes: 1, usageLimit: 1 }),
        'RWS_VAULT_UNREACHABLE',
        [API_KEY],
      );
      expect(error.message).toContain(url);
      expect(error.message).toContain('connection refused (ECONNREFUSED; 3 attempts)');
      expect(error.attempts).toBe(3);
      expect(debug.filter((line) => line.includes('ECONNREFUSED')).map((line) => line.replace(/ in \d+ ms$/, ''))).toEqual([
        'vault: POST /api/v1/vault/tokens/generate attempt 1/3: ECONNREFUSED',
        'vault: POST /api/v1/vault/tokens/generate attempt 2/3: ECONNREFUSED',
        'vault: POST /api/v1/vault/tokens/generate attempt 3/3: ECONNREFUSED',
      ]);
      expect(debug.filter((line) => line.startsWith('vault: retrying in '))).toHaveLength(2);
    } finally {
      await client.close();
    }
  });

  it('makes one attempt with retries 0', async () => {
    const { client, debug } = await makeClient(`http://127.0.0.1:${await closedPort()}`, { retries: 0 });
    try {
      const error = await expectVaultError(client.health(), 'RWS_VAULT_UNREACHABLE');
      expect(error.message).toContain('1 attempt)');
      expect(debug.filter((line) => line.includes(' attempt '))).toHaveLength(1);
      expect(debug).toContain('vault: undici code cache unbundled');
    } finally {
      await client.close();
    }
  });
});
