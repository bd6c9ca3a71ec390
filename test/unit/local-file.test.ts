import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isExposed, readLocalFile } from '../../src/local-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-local-file-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readLocalFile', () => {
  it('returns the text and the mode of a regular file', async () => {
    const path = join(dir, 'f');
    writeFileSync(path, 'A=ü\n');
    chmodSync(path, 0o640);
    const file = await readLocalFile(path, { maxBytes: 100, allowPipe: false });
    expect(file.text).toBe('A=ü\n');
    expect(isExposed(file.mode)).toBe(true);
    chmodSync(path, 0o600);
    expect(isExposed((await readLocalFile(path, { maxBytes: 100, allowPipe: false })).mode)).toBe(false);
  });

  it.each([
    ['missing', () => join(dir, 'nope'), /^no such file$/, 'unreadable'],
    ['a directory', () => dir, /^(is a directory|not a regular file)$/, 'unreadable'],
    ['not UTF-8', () => {
      const path = join(dir, 'latin1');
      writeFileSync(path, Buffer.from([0x41, 0x3d, 0xff, 0xfe]));
      return path;
    }, /^not valid UTF-8$/, 'invalid'],
    ['too large', () => {
      const path = join(dir, 'big');
      writeFileSync(path, 'x'.repeat(2048));
      return path;
    }, /^larger than 1 KiB$/, 'invalid'],
  ])('refuses a file that is %s, saying why and never quoting it', async (_name, make, reason, kind) => {
    await expect(readLocalFile(make(), { maxBytes: 1024, allowPipe: false })).rejects.toMatchObject({ reason: expect.stringMatching(reason), kind });
  });

  it('reads a pipe only where allowed, and bounds it while reading (a pipe has no size)', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    spawn('sh', ['-c', `printf 'A=1\\n' > "${fifo}"`]);
    expect((await readLocalFile(fifo, { maxBytes: 100, allowPipe: true })).text).toBe('A=1\n');
    // `yes` never stops: the read must stop at the limit (it then dies of SIGPIPE).
    const endless = spawn('sh', ['-c', `exec yes > "${fifo}"`]);
    await expect(readLocalFile(fifo, { maxBytes: 64 * 1024, allowPipe: true })).rejects.toMatchObject({ reason: 'larger than 64 KiB' });
    endless.kill();
    const refused = spawn('sh', ['-c', `printf 'A=1\\n' > "${fifo}"`]);
    await expect(readLocalFile(fifo, { maxBytes: 100, allowPipe: false })).rejects.toMatchObject({ reason: 'not a regular file' });
    refused.kill();
  });
});
