// What the one line says when a fallback directory could not be worked through, for the errnos no
// test can provoke on this file system (a read-only mount, an I/O error) and the ones it can.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directoryFailure } from '../../../src/fallback/directory-failure.js';

const uid = process.getuid?.() ?? -1;
let dir: string;
const errno = (code: string) => Object.assign(new Error(code), { code });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-dirfail-unit-'));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('directoryFailure', () => {
  it('names a read-only file system, and any other errno by its code alone, with where to look', async () => {
    expect(await directoryFailure(dir, uid, errno('EROFS'), { fix: 'x' })).toEqual({ reason: `${dir} is on a read-only file system (EROFS)`, hint: 'do it on a host where it is writable' });
    expect(await directoryFailure(dir, uid, errno('EIO'), { fix: 'x' })).toEqual({ reason: '(EIO)', hint: `check ${dir} and the directories above it` });
  });

  it('never repeats what is not an errno code (a message, a path): only "error"', async () => {
    expect((await directoryFailure(dir, uid, errno('rws_sk_not-a-code'), { fix: 'x' })).reason).toBe('(error)');
    expect((await directoryFailure(dir, uid, new Error('boom'), { fix: 'x' })).reason).toBe('(error)');
  });

  it('names the file standing where a directory is needed', async () => {
    writeFileSync(join(dir, 'file'), '');
    expect(await directoryFailure(join(dir, 'file', 'queue'), uid, errno('ENOTDIR'), { fix: 'x' })).toEqual({ reason: `${join(dir, 'file')} is not a directory (ENOTDIR)`, hint: `move ${join(dir, 'file')} aside` });
  });

  it('an entry that is a directory is named, to be moved out', async () => {
    mkdirSync(join(dir, 'entry.json'));
    expect(await directoryFailure(dir, uid, errno('ERR_FS_EISDIR'), { entry: join(dir, 'entry.json'), fix: 'x' })).toEqual({
      reason: `${join(dir, 'entry.json')} is a directory, not an entry the queue wrote (ERR_FS_EISDIR)`,
      hint: `move it out of ${dir}`,
    });
  });
});
