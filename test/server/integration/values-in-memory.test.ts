// Between requests the server's JavaScript heap holds no served value as a string: a value is
// opened the first time it is read and then kept masked in buffers (src/server/store/
// served-values.ts), and what a request made of it is garbage once answered. A real server is read
// from, many times, then asked for a heap snapshot (which collects garbage first); its strings
// must not hold the value (a cache of values as strings fails here), while they do hold its name.
// A snapshot does not show buffers' bytes, so the masking itself is served-values.ts's to keep.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';

const VALUE = 'mask-me-6d1f0c2a9b7e4d35';
let store: TestStore;
let server: RunningServer;
let snapshots: string;

beforeAll(async () => {
  store = await makeStore({ production: { CANARY_SECRET: VALUE, OTHER_SECRET: 'other-value-8a1c' } });
  snapshots = path.join(store.root, 'snapshots');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(snapshots, { mode: 0o700 });
  server = await startServer(store, [], { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` });
});
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

describe('values in memory', () => {
  it('are served right every time, and are not in the heap between requests', async () => {
    const apiKey = (await makeApiKey(store, ['production'], ['*'])).key;
    const t = await token(server, apiKey, { environment: 'production', key_pattern: '*' });
    for (let i = 0; i < 50; i++) {
      const reply = await call(`${server.url}/api/v1/vault/production/CANARY_SECRET`, { auth: t });
      expect(reply.body.value).toBe(VALUE);
    }
    const batch = await call(`${server.url}/api/v1/vault/secrets/batch`, { auth: t, json: { environment: 'production' } });
    expect(batch.body.secrets).toEqual({ CANARY_SECRET: VALUE, OTHER_SECRET: 'other-value-8a1c' });

    server.process.kill('SIGUSR2');
    let file = '';
    await until(async () => {
      const names = (await readdir(snapshots)).filter((name) => name.endsWith('.heapsnapshot'));
      if (names.length === 0) return false;
      const text = await readFile(path.join(snapshots, names[0] as string), 'utf8');
      // Written in one go at the end: complete once it parses.
      try {
        JSON.parse(text);
      } catch {
        return false;
      }
      file = text;
      return true;
    }, 60_000);
    // The snapshot does hold what the server kept on purpose: the name, and the file's ciphertext.
    expect(file).toContain('CANARY_SECRET');
    expect(file).not.toContain(VALUE);
    expect(file).not.toContain('other-value-8a1c');
    // And the server still serves after it.
    expect((await call(`${server.url}/api/v1/vault/production/CANARY_SECRET`, { auth: t })).body.value).toBe(VALUE);
  }, 90_000);
});
