// bin/run-with-secrets.js starts as an sh script that execs node: what it does before node runs.
import { execa } from 'execa';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, makeRuntimeDir, removeDir, writeEnvFile } from '../helpers/cli.js';

let dir: string;
beforeEach(() => {
  dir = makeRuntimeDir();
});
afterEach(() => removeDir(dir));

describe('node not on PATH (cron\'s PATH=/usr/bin:/bin, node under /usr/local/bin)', () => {
  it('is the wrapper\'s own failure, 125 and one line that says so, never 127 as for a command not found', async () => {
    const emptyBin = join(dir, 'bin');
    mkdirSync(emptyBin);
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const result = await execa(BIN, ['--env-file', envFile, '--', '/bin/true'], { env: { PATH: emptyBin, HOME: dir }, extendEnv: false, reject: false, stdin: 'ignore' });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toBe(`run-with-secrets: error RWS_NODE_NOT_FOUND: node is not on PATH (${emptyBin}) (hint: install Node.js 20.19 or later, or add the directory of node to PATH where run-with-secrets is started: cron sets PATH=/usr/bin:/bin)`);
  });
});
