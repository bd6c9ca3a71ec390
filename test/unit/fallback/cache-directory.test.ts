// The directory of a fallback copy, on real directories: what a read refuses and a write narrows,
// for the default place and for the directory of --fallback=PATH. The process's uid is a
// parameter, so root's directory can be judged as a user would judge it.
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FallbackError } from '../../../src/errors.js';
import { checkCacheDirectory, prepareCacheDirectory } from '../../../src/fallback/cache-directory.js';

const uid = process.getuid?.() ?? -1;
const asRoot = uid === 0;
let base: string;
let dir: string;
let path: string;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'rws-cache-dir-'));
  dir = join(base, 'fallback');
  path = join(dir, 'copy.bin');
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

async function refusal(check: Promise<void>): Promise<FallbackError> {
  const error = await check.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(FallbackError);
  expect((error as FallbackError).code).toBe('RWS_FALLBACK_UNSAFE');
  return error as FallbackError;
}

describe('the directory of a copy', () => {
  it('a missing one holds no copy: a read lets it be, a write makes it 0700', async () => {
    await checkCacheDirectory(path, uid, 'default');
    await prepareCacheDirectory(path, uid, 'default');
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
  });

  it('the default place: a read refuses any group or other bit, a write narrows it', async () => {
    mkdirSync(dir);
    for (const mode of [0o710, 0o704, 0o770]) {
      chmodSync(dir, mode);
      const error = await refusal(checkCacheDirectory(path, uid, 'default'));
      expect(error.message).toBe(`the fallback cache ${path} is refused: its directory ${dir} is open to group or others (mode ${mode.toString(8)})`);
      expect(error.hint).toContain(`chmod 700 ${dir}`);
    }
    await prepareCacheDirectory(path, uid, 'default');
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    await checkCacheDirectory(path, uid, 'default');
  });

  it('--fallback=PATH: a read and a write refuse a directory others may write, accept one they may only read, and never narrow it', async () => {
    mkdirSync(dir);
    chmodSync(dir, 0o770);
    for (const check of [checkCacheDirectory(path, uid, 'chosen'), prepareCacheDirectory(path, uid, 'chosen')]) {
      const error = await refusal(check);
      expect(error.message).toBe(`the fallback cache ${path} is refused: its directory ${dir} may be written by group or others (mode 770)`);
      expect(error.hint).toBe(`chmod go-w ${dir}, or give --fallback=PATH in a directory of yours that only you can write`);
    }
    chmodSync(dir, 0o755);
    await checkCacheDirectory(path, uid, 'chosen');
    await prepareCacheDirectory(path, uid, 'chosen');
    expect(lstatSync(dir).mode & 0o777).toBe(0o755);
  });

  it('a link in place of the directory is refused by a read and a write, never followed', async () => {
    const real = join(base, 'real');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, dir);
    for (const kind of ['default', 'chosen'] as const) {
      expect((await refusal(checkCacheDirectory(path, uid, kind))).message).toContain(`its directory ${dir} is a symbolic link, not a directory`);
      await refusal(prepareCacheDirectory(path, uid, kind));
    }
    // A PATH of one's own through a link (~/jobs -> /data/jobs): the hint gives the same PATH without it.
    for (const check of [checkCacheDirectory(path, uid, 'chosen'), prepareCacheDirectory(path, uid, 'chosen')]) {
      expect((await refusal(check)).hint).toBe(`give --fallback=${join(real, basename(path))}, the directory the link points to, not the link`);
    }
    // A link to a file, or a file, where the directory is needed: no PATH through it to offer.
    rmSync(dir);
    writeFileSync(join(base, 'file'), '');
    symlinkSync(join(base, 'file'), dir);
    expect((await refusal(checkCacheDirectory(path, uid, 'chosen'))).hint).toBe('give --fallback=PATH in a directory of yours that only you can write');
    rmSync(dir);
    writeFileSync(dir, '');
    expect((await refusal(checkCacheDirectory(path, uid, 'chosen'))).hint).toBe('give --fallback=PATH in a directory of yours that only you can write');
  });

  it('a file above the directory: RWS_FALLBACK_UNREADABLE naming that file, where the lookup\'s ENOTDIR came out as an internal error', async () => {
    writeFileSync(join(base, 'state'), '');
    const deep = join(base, 'state', 'run-with-secrets', 'fallback', 'copy.bin');
    for (const kind of ['default', 'chosen'] as const) {
      const error = await checkCacheDirectory(deep, uid, kind).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(FallbackError);
      expect((error as FallbackError).code).toBe('RWS_FALLBACK_UNREADABLE');
      expect((error as FallbackError).message).toBe(`the fallback cache ${deep} cannot be reached: ${join(base, 'state')} is not a directory (ENOTDIR)`);
      expect((error as FallbackError).hint).toBe(
        kind === 'default'
          ? `move ${join(base, 'state')} aside, or point XDG_STATE_HOME at a directory of yours, or give --fallback=PATH`
          : `move ${join(base, 'state')} aside, or give --fallback=PATH in a directory of yours`,
      );
    }
  });

  it.skipIf(!asRoot)("root's directory, as a user finds it after a sudo that kept their HOME: the chown that gives it back", async () => {
    mkdirSync(dir, { mode: 0o700 });
    const error = await refusal(checkCacheDirectory(path, 65534, 'default'));
    expect(error.message).toBe(`the fallback cache ${path} is refused: its directory ${dir} is owned by uid 0, not by you (uid 65534)`);
    expect(error.hint).toBe(`root made it (sudo without -H keeps your HOME): chown -R 65534 ${dir} as root, then run again`);
    expect((await refusal(checkCacheDirectory(path, 65534, 'chosen'))).hint).toBe(`sudo chown 65534 ${dir}, or give --fallback=PATH in a directory of yours that only you can write`);
  });

  it.skipIf(!asRoot)("another user's directory is theirs: refused, and no chown offered", async () => {
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    for (const check of [checkCacheDirectory(path, 0, 'default'), prepareCacheDirectory(path, 0, 'default')]) {
      const error = await refusal(check);
      expect(error.message).toContain('is owned by uid 65534, not by you (uid 0)');
      expect(error.hint).not.toContain('chown');
    }
    expect(lstatSync(dir).uid).toBe(65534);
  });
});
