// A secrets file the server refuses, as its operator reads the log: each request to it logged
// `SopsError RWS_SOPS_MAC_MISMATCH` alone (no file, no hint, a line a request), and a file the
// server's user may not read was a 500 RWS_INTERNAL with `Error EACCES` in the log. Now the
// refusal is told once per version of the file, in full, and its return once.
import { chmod, chown, copyFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { A_KEY: 'a-value', B_KEY: 'b-value' } });
  ({ key: apiKey } = await makeApiKey(store, ['production'], ['*']));
});
afterAll(async () => {
  await store?.cleanup();
});

const lines = (text: string) => text.split('\n').filter((line) => line !== '');

describe('a refused secrets file in the server log', () => {
  it('is told once per version of the file, naming it, why and what to do; its return once', async () => {
    const server = await startServer(store);
    try {
      const read = await token(server, apiKey, { subject: 'log', environment: 'production', key_pattern: '*' });
      const get = () => call(`${server.url}/api/v1/vault/production/A_KEY`, { auth: read });
      expect((await get()).status).toBe(200);
      const file = path.join(store.dir, 'production.enc.yaml');
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.split('\n').filter((line) => !line.startsWith('B_KEY:')).join('\n'));
      await until(async () => (await get()).status === 500);
      for (let i = 0; i < 5; i++) expect((await get()).body.error.code).toBe('RWS_STORE_INVALID');
      await call(`${server.url}/healthz`);
      expect(lines(server.stderr())).toEqual([
        expect.stringMatching(new RegExp(`^secrets-server: error RWS_SOPS_MAC_MISMATCH: ${file}: .+ \\(hint: .+\\)$`)),
      ]);
      expect(server.stderr()).not.toMatch(/a-value|b-value/);

      // Restored from version control.
      await writeFile(file, text);
      await until(async () => (await get()).status === 200);
      expect(lines(server.stderr())[1]).toBe(`secrets-server: ${file} is served again`);
      expect(lines(server.stderr())).toHaveLength(2);
    } finally {
      await server.stop();
    }
  });

  it.skipIf(!asRoot)('that the server user may not read is a 500 RWS_STORE_INVALID, and the log says whose the file is', async () => {
    const own = await makeStore({ production: { A_KEY: 'a-value' } });
    try {
      const { key } = await makeApiKey(own, ['production'], ['*']);
      await chmod(own.root, 0o711);
      for (const name of ['', ...(await readdir(own.dir))]) await chown(path.join(own.dir, name), NOBODY, NOBODY);
      const server = await startServer(own, [], {}, ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups']);
      try {
        const read = await token(server, key, { subject: 'log', environment: 'production', key_pattern: '*' });
        const get = () => call(`${server.url}/api/v1/vault/production/A_KEY`, { auth: read });
        expect((await get()).status).toBe(200);
        // As a root `cp` or `sops` edit leaves it: root's, 0600.
        const file = path.join(own.dir, 'production.enc.yaml');
        await copyFile(file, `${file}.new`);
        await chown(`${file}.new`, 0, 0);
        await rm(file);
        await copyFile(`${file}.new`, file);
        await rm(`${file}.new`);
        await chown(file, 0, 0);
        await until(async () => (await get()).status === 500);
        const reply = await get();
        expect(reply.body.error).toEqual({ code: 'RWS_STORE_INVALID', message: 'the secrets file cannot be read by the server and is not served' });
        expect((await call(`${server.url}/healthz`)).body.environments.production).toEqual({ error: 'RWS_FILE_ACCESS' });
        expect(lines(server.stderr())).toEqual([
          `secrets-server: error RWS_FILE_ACCESS: cannot read ${file}: permission denied (EACCES); it belongs to uid 0 and this process runs as uid ${NOBODY} (hint: give it to the user the server runs as (chown ${NOBODY} ${file}), or run the commands that write the store as that user)`,
        ]);
        await chown(file, NOBODY, NOBODY);
        await until(async () => (await get()).status === 200);
        expect(lines(server.stderr())[1]).toBe(`secrets-server: ${file} is served again`);
      } finally {
        await server.stop();
      }
    } finally {
      await own.cleanup();
    }
  });
});
