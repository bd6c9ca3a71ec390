// Which part of a path stops a lookup, on real files; the directory a user may not enter is seen
// by the fallback's integration test, run as nobody (root enters everything).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findBlocker } from '../../src/blocked-path.js';

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'rws-blocked-'));
});
afterEach(() => rmSync(base, { recursive: true, force: true }));

describe('findBlocker', () => {
  it('names the file that sits where a directory is needed, however deep below it the path goes', async () => {
    writeFileSync(join(base, 'state'), '');
    for (const path of [join(base, 'state', 'copy.bin'), join(base, 'state', 'a', 'b', 'copy.bin')]) expect(await findBlocker(path)).toEqual({ path: join(base, 'state'), kind: 'not-directory' });
  });

  it('passes through a link to a directory, and names nothing when the path is only missing', async () => {
    mkdirSync(join(base, 'real'));
    symlinkSync(join(base, 'real'), join(base, 'link'));
    expect(await findBlocker(join(base, 'link', 'missing', 'copy.bin'))).toBeUndefined();
    writeFileSync(join(base, 'real', 'file'), '');
    expect(await findBlocker(join(base, 'link', 'file', 'copy.bin'))).toEqual({ path: join(base, 'link', 'file'), kind: 'not-directory' });
  });
});
