// A long-poll never outlasts its token: held with a token that expires before the wait ends, it
// is answered 304 at the token's expiry (a watcher would take a 401 for a revocation). A file of
// its own, because it takes most of a minute (the shortest token lives one), run beside the others.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';

let store: TestStore;
let server: RunningServer;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_A_KEY: 'a-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['*'])).key;
  server = await startServer(store);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

it('ends a hold with a 304 when the token expires, not at the end of a longer wait', async () => {
  const t = await token(server, apiKey, { environment: 'production', key_pattern: '*', ttl_minutes: 1 });
  const expiresAt = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).exp * 1000;
  const batch = (headers: Record<string, string>, wait = '') => call(`${server.url}/api/v1/vault/secrets/batch${wait}`, { auth: t, json: { environment: 'production' }, headers });
  const etag = (await batch({})).headers.get('etag') as string;
  // Held from about 45 s before the token's end, with a wait of 60 s.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - 45_000 - Date.now())));
  const started = Date.now();
  const reply = await batch({ 'if-none-match': etag }, '?wait=60');
  const answeredAt = Date.now();
  expect(reply.status).toBe(304);
  expect(answeredAt).toBeGreaterThanOrEqual(expiresAt - 1000);
  expect(answeredAt - started).toBeLessThan(55_000);
}, 90_000);
