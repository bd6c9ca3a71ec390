// Who can really reach a file: real files and directories with real modes, symlinks included.
import { chmodSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileExposure } from '../../src/file-exposure.js';
import { makeRuntimeDir, makeSharedDir, removeDir, writeEnvFile } from '../helpers/cli.js';

let privateDir: string;
let sharedDir: string;
beforeEach(() => {
  privateDir = makeRuntimeDir();
  sharedDir = makeSharedDir();
});
afterEach(() => {
  removeDir(privateDir);
  removeDir(sharedDir);
});

describe('fileExposure', () => {
  it('a 644 file behind a 700 directory reaches nobody', async () => {
    expect(await fileExposure(writeEnvFile(privateDir, 'a.env', 'A=1\n', 0o644))).toBeUndefined();
  });

  it('a 644 file in directories all searchable by others reaches others', async () => {
    expect(await fileExposure(writeEnvFile(sharedDir, 'a.env', 'A=1\n', 0o644))).toBe('others');
  });

  it('a symlink is judged by where it points, not where it sits', async () => {
    const target = writeEnvFile(sharedDir, 'real.env', 'A=1\n', 0o644);
    const link = join(privateDir, 'link.env');
    symlinkSync(target, link);
    expect(await fileExposure(link)).toBe('others');
    const hidden = writeEnvFile(privateDir, 'hidden.env', 'A=1\n', 0o644);
    const outside = join(sharedDir, 'outside.env');
    symlinkSync(hidden, outside);
    expect(await fileExposure(outside)).toBeUndefined();
  });

  it('a 640 file reaches its group through 750 directories of that group, and others not at all', async () => {
    const groupDir = join(sharedDir, 'team');
    mkdirSync(groupDir);
    const file = writeEnvFile(groupDir, 'a.env', 'A=1\n', 0o640);
    chmodSync(groupDir, 0o750);
    expect(await fileExposure(file)).toBe('group');
    chmodSync(groupDir, 0o700);
    expect(await fileExposure(file)).toBeUndefined();
  });

  it('a file that is gone, or a dangling link, reaches nobody', async () => {
    expect(await fileExposure(join(sharedDir, 'missing.env'))).toBeUndefined();
    const dangling = join(sharedDir, 'dangling.env');
    symlinkSync(join(sharedDir, 'nowhere'), dangling);
    expect(await fileExposure(dangling)).toBeUndefined();
  });
});
