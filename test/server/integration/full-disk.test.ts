// The store's disk full under a running server, and at its start: a real tmpfs filled to the
// last byte. The commit's failure named no file (`the state database could not be written
// (SQLITE_FULL)`, with a hint about PostgreSQL URLs), and a server started on the full disk
// stopped with `internal error (Error ENOSPC)`. Needs root to mount: CI runs as root.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cli, makeApiKey, startServer, type TestStore, token, until } from '../helpers/server.js';

const asRoot = process.getuid?.() === 0;
let root: string;
let store: TestStore;

beforeAll(async () => {
  if (!asRoot) return;
  root = await mkdtemp(path.join(tmpdir(), 'rws-full-'));
  const mount = path.join(root, 'disk');
  await mkdir(mount);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mount]);
  store = { root, dir: path.join(mount, 'store'), cleanup: async () => undefined };
  await cli(['init', '--store', store.dir]);
  await cli(['secret', 'set', 'production', 'A_KEY', '--store', store.dir], { input: 'a-value' });
});
afterAll(async () => {
  if (!asRoot) return;
  execFileSync('umount', [path.join(root, 'disk')]);
  await rm(root, { recursive: true, force: true });
});

/** Fills the file system holding `dir` to its last byte. */
async function fill(dir: string): Promise<void> {
  for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
    for (let i = 0; ; i++) {
      try {
        await writeFile(path.join(dir, `filler-${size}-${i}`), Buffer.alloc(size));
      } catch {
        break;
      }
    }
  }
}

describe.skipIf(!asRoot)('the store on a full disk', () => {
  it('a commit that cannot be written names state.db and says the disk is full, /healthz answers 503 until a commit goes through; a server started then names the file it could not write', async () => {
    const { key } = await makeApiKey(store, ['production'], ['*']);
    const server = await startServer(store);
    const dispatcher = new Agent({ connections: 1 });
    try {
      // Usage-limited: every read is a commit of its own.
      const read = await token(server, key, { subject: 'full', environment: 'production', key_pattern: '*', usage_limit: 1_000_000 });
      await fill(path.dirname(store.dir));
      // SQLite reuses the WAL it has: reads go on until it needs a page more.
      await until(async () => {
        for (let i = 0; i < 200; i++) if ((await call(`${server.url}/api/v1/vault/production/A_KEY`, { auth: read, dispatcher })).status === 503) return true;
        return false;
      }, 20_000).catch((error: unknown) => {
        throw new Error(`no 503: ${server.stderr()} ${String(error)}`);
      });
      const dir = store.dir;
      expect(server.stderr()).toContain(
        `secrets-server: error RWS_STATE_UNAVAILABLE: the state database ${dir}/state.db could not be written: its file system is full (SQLITE_FULL) (hint: free space on the file system holding ${dir} (df -h ${dir}); requests are answered again at the first commit that goes through)\n`,
      );
      // Its own reads still go through, but a monitor must not be told all is well: it said 200.
      const unhealthy = await call(`${server.url}/healthz`);
      expect([unhealthy.status, unhealthy.body.status, unhealthy.body.state]).toEqual([503, 'unavailable', { kind: 'sqlite', schema: expect.any(Number) }]);
      // Space freed: the next commit goes through, and /healthz says so.
      const disk = path.dirname(store.dir);
      for (const name of await readdir(disk)) if (name.startsWith('filler-')) await rm(path.join(disk, name));
      await until(async () => (await call(`${server.url}/api/v1/vault/production/A_KEY`, { auth: read, dispatcher })).status === 200, 5000);
      expect((await call(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await dispatcher.close();
      await server.stop();
    }
    // What the stopping server freed (its WAL checkpointed away), filled again.
    await fill(path.dirname(store.dir));
    const again = await startServer(store).then(
      async (started) => `started: ${String(await started.stop())}`,
      (error: Error) => error.message,
    );
    // Which file the full disk stops first depends on what the stopped server left: either is named, never an internal error.
    expect(again).toMatch(
      new RegExp(
        `^server exited 1 before it was ready: secrets-server: error (${[
          `RWS_FILE_ACCESS: cannot write ${store.dir}/state-seen.json: no space left on device \\(ENOSPC\\) \\(hint: the file system is full: free some space\\)`,
          `RWS_STATE_UNAVAILABLE: the state database ${store.dir}/state.db could not be opened: (its file system is full|the disk reported an I/O error) \\(SQLITE_[A-Z_]+\\) \\(hint: [^\\n]+\\)`,
        ].join('|')})\n$`,
      ),
    );
  }, 40_000);
});
