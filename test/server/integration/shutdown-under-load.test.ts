// SIGTERM while keep-alive clients keep the server busy, as a supervisor stops it mid-traffic.
// node:http's close() closed every connection idle at that instant, and a busy client's next
// request was already on its way on one of them: 46 of 50 clients got ECONNRESET on a reused
// connection, a request the client cannot tell was served or not. Now every answer after the
// signal closes its connection and new connections are refused: a client sees its answer, or a
// refused connect, which is safe to retry elsewhere.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApiKey, makeStore, startServer, type TestStore, token } from '../helpers/server.js';

let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { A_KEY: 'a-value' } });
  ({ key: apiKey } = await makeApiKey(store, ['production'], ['*']));
});
afterAll(async () => {
  await store?.cleanup();
});

describe('SIGTERM under load', () => {
  it('resets no request on a kept-alive connection, refuses new connections, and exits 0', async () => {
    const server = await startServer(store);
    const read = await token(server, apiKey, { subject: 'load', environment: 'production', key_pattern: '*', ttl_minutes: 10 });
    const { port } = new URL(server.url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
    const outcomes: Record<string, number> = {};
    const count = (what: string) => (outcomes[what] = (outcomes[what] ?? 0) + 1);
    let stopped = false;
    const client = async (): Promise<void> => {
      while (!stopped) {
        await new Promise<void>((resolve) => {
          const req = http.request({ host: '127.0.0.1', port, path: '/api/v1/vault/production/A_KEY', agent, headers: { authorization: `Bearer ${read}` } }, (res) => {
            res.resume();
            res.on('end', () => {
              count(`${res.statusCode}`);
              resolve();
            });
          });
          req.on('error', (error: NodeJS.ErrnoException) => {
            count(`${error.code}${req.reusedSocket ? ' on a reused connection' : ''}`);
            stopped ||= error.code === 'ECONNREFUSED';
            resolve();
          });
          req.end();
        });
      }
    };
    const clients = Array.from({ length: 40 }, () => client());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const exit = await server.stop('SIGTERM');
    stopped = true;
    await Promise.all(clients);
    agent.destroy();
    expect(exit).toBe(0);
    expect(outcomes['200']).toBeGreaterThan(100);
    expect(Object.keys(outcomes).filter((what) => what !== '200' && what !== 'ECONNREFUSED')).toEqual([]);
  }, 30_000);
});
