// An admin command whose change has committed reports it and exits 0; one that cannot finish
// refuses before it changes anything. Before, `apikey create` and `revoke` exited 1 after their
// commit when state-seen.json could not be read or written: a live key nobody was shown.
import { execFile } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, BIN, cli, cliOk, makeApiKey, makeStore, type TestStore } from '../helpers/server.js';

const run = promisify(execFile);
let store: TestStore;

beforeAll(async () => {
  store = await makeStore();
});
afterAll(() => store.cleanup());

const keyCount = async (dir: string): Promise<number> => (await cliOk(['apikey', 'list', '--json', '--store', dir])).split('\n').filter(Boolean).length;

describe('state-seen.json readable by others', () => {
  it('refuses apikey create and revoke before anything is changed', async () => {
    const { id } = await makeApiKey(store, ['production'], ['DB_*']);
    const seen = path.join(store.dir, 'state-seen.json');
    const rowsBefore = auditRowsSync(store.dir).length;
    await chmod(seen, 0o644);
    try {
      const created = await cli(['apikey', 'create', '--store', store.dir, '--name', 'orphan', '--environment', 'production', '--key-pattern', 'DB_*']);
      expect(created.exitCode).toBe(1);
      expect(created.stderr).toMatch(/^secrets-server: error RWS_STORE_INVALID: .*state-seen\.json is readable by others/);
      expect(created.stdout).toBe('');
      const revoked = await cli(['apikey', 'revoke', id, '--store', store.dir]);
      expect(revoked.exitCode).toBe(1);
      expect(revoked.stderr).toMatch(/RWS_STORE_INVALID/);
    } finally {
      await chmod(seen, 0o600);
    }
    expect(await keyCount(store.dir)).toBe(1);
    const [key] = (await cliOk(['apikey', 'list', '--json', '--store', store.dir])).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { revoked_at: string | null });
    expect(key?.revoked_at).toBeNull();
    expect(auditRowsSync(store.dir).length).toBe(rowsBefore);
  });
});

// Inside a mount namespace of our own: a small tmpfs filled to leave 0, 1, 2… pages free, and
// `apikey create` run on a copy of the store in each. Somewhere the commit fits and recording
// the head after it does not.
const SWEEP = `
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, cpSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import path from 'node:path';
const [bin, source, mnt, pages] = process.argv.slice(2);
const results = [];
for (let x = 0; x <= Number(pages); x++) {
  for (const name of ['store', 'fill']) rmSync(path.join(mnt, name), { recursive: true, force: true });
  const dir = path.join(mnt, 'store');
  cpSync(source, dir, { recursive: true });
  chmodSync(dir, 0o700);
  const fs = statfsSync(mnt);
  let left = fs.bavail * fs.bsize - x * 4096;
  const fd = openSync(path.join(mnt, 'fill'), 'w');
  const chunk = Buffer.alloc(65536);
  while (left > 0) left -= writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  closeSync(fd);
  const r = spawnSync(bin, ['apikey', 'create', '--store', dir, '--name', 'n', '--environment', 'production', '--key-pattern', 'A_*'], { encoding: 'utf8' });
  rmSync(path.join(mnt, 'fill'));
  const keys = execFileSync(bin, ['apikey', 'list', '--json', '--store', dir], { encoding: 'utf8' }).split('\\n').filter(Boolean).length;
  results.push({ x, code: r.status, printed: /^key: rws_sk_[0-9a-f]{32}$/m.test(r.stdout), warned: /^secrets-server: warning /m.test(r.stderr), keys });
}
console.log(JSON.stringify(results));
`;

describe('a full store filesystem', () => {
  it('apikey create either refuses with no key made, or makes it, prints it and exits 0 (warning when the head could not be recorded)', async (context) => {
    if (!(await run('unshare', ['-rm', 'true']).then(() => true, () => false))) return context.skip();
    const fresh = await makeStore();
    try {
      const script = path.join(fresh.root, 'sweep.mjs');
      await writeFile(script, SWEEP);
      const mnt = path.join(fresh.root, 'mnt');
      await run('mkdir', [mnt]);
      const { stdout } = await run('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=4m tmpfs "$1" && shift && exec "$@"', 'sh', mnt, process.execPath, script, BIN, fresh.dir, mnt, '30'], { maxBuffer: 1 << 20 });
      const results = JSON.parse(stdout) as Array<{ x: number; code: number; printed: boolean; warned: boolean; keys: number }>;
      for (const r of results) {
        if (r.keys === 1) expect(r, `with ${r.x} pages free`).toMatchObject({ code: 0, printed: true });
        else expect(r, `with ${r.x} pages free`).toMatchObject({ code: 1, printed: false, keys: 0 });
      }
      // The sweep reached both ends and the case in between: refused, made with a warning, made.
      expect(results.some((r) => r.code === 1)).toBe(true);
      expect(results.some((r) => r.code === 0 && r.warned)).toBe(true);
      expect(results.some((r) => r.code === 0 && !r.warned)).toBe(true);
    } finally {
      await fresh.cleanup();
    }
  }, 120_000);
});
