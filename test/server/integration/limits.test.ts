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
  const ask = (key: string, dispatcher?: Agent) => generate(server, key, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, dispatcher);
  const wrongKey = (i: number) => `rws_sk_${i.toString(16).padStart(32, '0')}`;

  it('answers 429 after more than 20 401s from one address within 60 s, to that address only, and lets its valid credentials through', async () => {
    const attacker = new Agent({ localAddress: '127.0.0.23' });
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await ask(wrongKey(i), attacker)).status);
    expect(statuses.slice(0, 21)).toEqual(Array(21).fill(401));
    expect(statuses[21]).toBe(429);
    const limited = await ask(wrongKey(99), attacker);
    expect(limited.body.error.code).toBe('RWS_RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(50);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    // A forged token from that address is refused before any verification; so is no credential.
    expect((await read(server.url, 'eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl', attacker)).status).toBe(429);
    // The right key keeps working from the limited address, and so does the token it mints,
    // even on its first use.
    const minted = await ask(apiKey, attacker);
    expect(minted.status).toBe(201);
    expect((await read(server.url, minted.body.token, attacker)).body.value).toBe('limit-secret-value');
    expect((await call(`${server.url}/healthz`, { dispatcher: attacker })).status).toBe(200);
    // Everyone else is unaffected.
    expect((await ask(wrongKey(1), new Agent({ localAddress: '127.0.0.24' }))).status).toBe(401);
    await attacker.close();
  });
});

describe('failed authentications from many addresses', () => {
  it('spends a server-wide budget: then unknown credentials from any address are slowed to a trickle while valid ones keep working', async () => {
    // A store and server of its own: the spent budget must not touch the other tests.
    const ownStore = await makeStore({ production: { SERVICE_B_KEY: 'limit-secret-value' } });
    const ownKey = (await makeApiKey(ownStore, ['production'], ['SERVICE_B_*'])).key;
    const own = await startServer(ownStore);
    try {
      const agents = Array.from({ length: 200 }, (_, i) => new Agent({ localAddress: `127.1.${i >> 8}.${(i & 255) + 1}` }));
      const attempt = (i: number) => generate(own, `rws_sk_${i.toString(16).padStart(32, 'f')}`, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, agents[i % agents.length]);
      // 1,200 wrong keys, 6 per address: far under the per-address limit of 20.
      const statuses: number[] = [];
      for (let round = 0; round < 6; round++) statuses.push(...(await Promise.all(agents.map((_, i) => attempt(round * agents.length + i)))).map((r) => r.status));
      expect(statuses.filter((status) => status === 401).length).toBeGreaterThanOrEqual(1000);
      expect(statuses.filter((status) => status === 429).length).toBeGreaterThan(0);
      expect(statuses.every((status) => status === 401 || status === 429)).toBe(true);
      // Now a fresh address gets 429 for a wrong key (bar the trickle of a few per second)...
      const fresh = new Agent({ localAddress: '127.2.0.1' });
      const later = await Promise.all(Array.from({ length: 40 }, (_, i) => attempt(5000 + i)));
      expect(later.filter((reply) => reply.status === 429).length).toBeGreaterThan(20);
      expect(later.find((reply) => reply.status === 429)?.headers.get('retry-after')).toBe('1');
      // ...and a valid key and its token work from anywhere, at once.
      const minted = await generate(own, ownKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, fresh);
      expect(minted.status).toBe(201);
      expect((await read(own.url, minted.body.token, agents[7])).status).toBe(200);
      await Promise.all([...agents, fresh].map((agent) => agent.close()));
    } finally {
      await own.stop();
      await ownStore.cleanup();
    }
  });
});
