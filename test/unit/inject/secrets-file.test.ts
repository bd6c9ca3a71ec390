// The secrets file's own failures name their cause (an errno code, or the check that failed),
// never the content: the hint used to send users to --verbose, which showed nothing more.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SecretsFile } from '../../../src/inject/secrets-file.js';
import { makeRuntimeDir, removeDir } from '../../helpers/cli.js';

let dir: string;
beforeEach(() => {
  dir = makeRuntimeDir();
});
afterEach(() => removeDir(dir));

/** What `make` threw. */
function thrown(make: () => unknown): unknown {
  try {
    make();
  } catch (error) {
    return error;
  }
  throw new Error('nothing was thrown');
}

describe('SecretsFile failures', () => {
  it('a base directory that does not exist is named with ENOENT; nothing is registered', () => {
    const registered: SecretsFile[] = [];
    const failure = thrown(() => SecretsFile.create(join(dir, 'missing'), 'secrets.env', 'A=hunter2\n', (file) => registered.push(file)));
    expect(failure).toMatchObject({ code: 'RWS_SECRETS_FILE', message: `cannot create a private directory in ${join(dir, 'missing')}: ENOENT` });
    expect((failure as Error).message).not.toContain('hunter2');
    expect(registered).toEqual([]);
  });

  it('a file that cannot be written says why, and the directory is registered for removal', async () => {
    const registered: SecretsFile[] = [];
    // A name with a slash: the open fails (ENOENT) inside the new private directory.
    const failure = thrown(() => SecretsFile.create(dir, 'no/such/secrets.env', 'A=hunter2\n', (file) => registered.push(file)));
    expect(failure).toMatchObject({ code: 'RWS_SECRETS_FILE', message: expect.stringMatching(/^cannot create the secrets file in \S+: ENOENT$/), hint: 'check the temporary directory' });
    expect(registered).toHaveLength(1);
    await registered[0]!.dispose();
    expect(existsSync(registered[0]!.dir)).toBe(false);
  });

  it('a run already cleaned up (a stop signal while it was on its way) gets nothing: released at registration, nothing is written', () => {
    const failure = thrown(() => SecretsFile.create(dir, 'secrets.env', 'A=hunter2\n', (file) => file.disposeSync()));
    expect(failure).toMatchObject({ code: 'RWS_SECRETS_FILE', message: 'the run was stopped before its secrets file was made' });
    expect(readdirSync(dir)).toEqual([]);
  });
});
