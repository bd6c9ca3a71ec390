// Use limits under concurrency, state across restarts, and the per-address 401 limit.
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, generate, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';

let store: TestStore;
let server: RunningServer;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'limit-secret-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
  server = await startServer(store);
});

afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

const read = (url: string, t: string, dispatcher?: Agent) => call(`${url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t, dispatcher });

describe('usage_limit', () => {
  it('lets exactly 10 of 100 parallel requests through a limit-10 token', async () => {
    const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*', usage_limit: 10 });
    const dispatcher = new Agent({ connections: 100, localAddress: '127.0.0.21' });
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 3 === 0
      ? call(`${server.url}/api/v1/vault/secrets/batch`, { auth: t, json: { environment: 'production' }, dispatcher })
      : read(server.url, t, dispatcher))));
    const statuses = replies.map((reply) => reply.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(10);
    // The others are refused: spent (401), or, once more than 20 of those 401s have come from
    // this address, rate limited (429) depending on how the requests interleave.
    for (const reply of replies.filter((r) => r.status !== 200)) expect([reply.status, reply.body.error.code]).toSatisfy(([status, code]) => (status === 401 && code === 'RWS_TOKEN_EXHAUSTED') || (status === 429 && code === 'RWS_RATE_LIMITED'));
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThan(20);
    await dispatcher.close();
  });

  it('keeps uses and revocations across a restart', async () => {
    const limited = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 3 });
    const revoked = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    expect((await read(server.url, limited)).status).toBe(200);
    expect((await read(server.url, limited)).status).toBe(200);
    expect((await call(`${server.url}/api/v1/vault/tokens/revoke`, { auth: revoked, method: 'POST' })).status).toBe(204);

    // SIGKILL: nothing gets a chance to flush; what was answered must already be on disk.
    expect(await server.stop('SIGKILL')).toBeNull();
    server = await startServer(store);
    expect((await read(server.url, limited)).status).toBe(200);
    const dispatcher = new Agent({ localAddress: '127.0.0.22' });
    expect((await read(server.url, limited, dispatcher)).body.error.code).toBe('RWS_TOKEN_EXHAUSTED');
    expect((await read(server.url, revoked, dispatcher)).body.error.code).toBe('RWS_TOKEN_REVOKED');
    await dispatcher.close();
  });
});

describe('failed authentications', () => {
  it('answers 429 after more than 20 401s from one address within 60 s, to that address only', async () => {
    const attacker = new Agent({ localAddress: '127.0.0.23' });
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) {
      statuses.push((await generate(server, `rws_sk_${i.toString(16).padStart(32, '0')}`, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, attacker)).status);
    }
    expect(statuses.slice(0, 21)).toEqual(Array(21).fill(401));
    expect(statuses[21]).toBe(429);
    // Even a good key is refused from that address now, with Retry-After.
    const locked = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, attacker);
    expect(locked.status).toBe(429);
    expect(locked.body.error.code).toBe('RWS_RATE_LIMITED');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(50);
    expect(Number(locked.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect((await call(`${server.url}/healthz`, { dispatcher: attacker })).status).toBe(200);
    // Everyone else is unaffected.
    expect((await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' })).status).toBe(201);
    await attacker.close();
  });
});
