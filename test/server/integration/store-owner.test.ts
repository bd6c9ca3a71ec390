// A server run as a service user, and an operator who runs the admin commands with sudo: a file
// root made in the store (a secrets file rewritten, state-seen.json, a lock file) was root's,
// 0600, and the server could no longer read it (a 500 RWS_INTERNAL on every read of that
// environment). Needs root to run as someone else: CI runs as root.
import { chmod, chown, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { BIN, call, cliOk, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const AS_NOBODY = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];

let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  if (!asRoot) return;
  store = await makeStore({ production: { DB_PASSWORD: 'before' } });
  ({ key: apiKey } = await makeApiKey(store, ['production', 'staging'], ['DB_*']));
  // The service user's store, as `install -d -o rws -m 700` and `chown -R` leave it.
  await chmod(store.root, 0o711);
  await chown(store.dir, NOBODY, NOBODY);
  for (const name of await readdir(store.dir)) await chown(path.join(store.dir, name), NOBODY, NOBODY);
});
afterAll(async () => {
  await store?.cleanup();
});

async function owners(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const name of await readdir(dir)) {
    const { uid, gid } = await stat(path.join(dir, name));
    found[name] = `${uid}:${gid}`;
  }
  return found;
}

describe.skipIf(!asRoot)('admin commands run as root on a store another user owns', () => {
  it('give the files they make to the store directory owner, so the server running as that user still reads them', async () => {
    const server = await startServer(store, [], {}, AS_NOBODY);
    try {
      const env = { VANTA_SOPS_FILES_PATH: store.dir };
      await cliOk(['secret', 'set', 'production', 'DB_PASSWORD'], { input: 'after', env });
      await cliOk(['secret', 'set', 'staging', 'DB_PASSWORD'], { input: 'new-environment', env });
      await cliOk(['apikey', 'create', '--name', 'later', '--environment', 'production', '--key-pattern', 'DB_*'], { env });

      const found = await owners(store.dir);
      expect(Object.keys(found)).toEqual(expect.arrayContaining(['production.enc.yaml', 'staging.enc.yaml', 'state-seen.json', 'state-locks.sops-staging.db']));
      expect(Object.entries(found).filter(([, owner]) => owner !== `${NOBODY}:${NOBODY}`)).toEqual([]);

      for (const [environment, value] of [['production', 'after'], ['staging', 'new-environment']]) {
        const read = await token(server, apiKey, { subject: 'owner', environment, key_pattern: 'DB_*' });
        let reply = await call(`${server.url}/api/v1/vault/${environment}/DB_PASSWORD`, { auth: read });
        await until(async () => {
          reply = await call(`${server.url}/api/v1/vault/${environment}/DB_PASSWORD`, { auth: read });
          return reply.body?.value === value || reply.status >= 500;
        });
        expect([reply.status, reply.body]).toEqual([200, { environment, key: 'DB_PASSWORD', value }]);
      }
      expect(server.stderr()).toBe('');
    } finally {
      await server.stop();
    }
  });

  it('a store, state.db or key file of another user stops the server at start with whose it is and the chown', async () => {
    const other = await makeStore({ production: { DB_PASSWORD: 'x' } });
    try {
      await chmod(other.root, 0o711);
      const serve = async () => {
        const result = await execa(AS_NOBODY[0] as string, [...AS_NOBODY.slice(1), process.execPath, BIN, 'serve', '--port', '0', '--store', other.dir], { reject: false, timeout: 20_000 });
        return [result.exitCode, result.stderr];
      };
      const dir = other.dir;
      expect(await serve()).toEqual([1, `secrets-server: error RWS_STORE_INVALID: store directory ${dir} belongs to uid 0 and this process runs as uid ${NOBODY} (hint: run secrets-server as the store's owner, or give it the store (chown -R ${NOBODY} ${dir}))`]);
      await chown(dir, NOBODY, NOBODY);
      for (const name of await readdir(dir)) await chown(path.join(dir, name), NOBODY, NOBODY);
      for (const name of ['jwt-secret', 'state.db']) {
        const file = path.join(dir, name);
        await chown(file, 0, 0);
        const [what, code] = name === 'state.db' ? ['open the state database', 'RWS_STATE_UNAVAILABLE: cannot'] : ['read', 'RWS_FILE_ACCESS: cannot'];
        expect(await serve()).toEqual([
          1,
          `secrets-server: error ${code} ${what} ${file}: permission denied (EACCES); it belongs to uid 0 and this process runs as uid ${NOBODY} (hint: give it to the user the server runs as (chown ${NOBODY} ${file}), or run the commands that write the store as that user)`,
        ]);
        await chown(file, NOBODY, NOBODY);
      }
    } finally {
      await other.cleanup();
    }
  });

  it('leave a store that root owns to root', async () => {
    const own = await makeStore({ production: { DB_PASSWORD: 'x' } });
    try {
      await cliOk(['secret', 'set', 'production', 'DB_PASSWORD', '--store', own.dir], { input: 'y' });
      expect(Object.values(await owners(own.dir)).every((owner) => owner === '0:0')).toBe(true);
    } finally {
      await own.cleanup();
    }
  });
});
