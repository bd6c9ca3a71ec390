// The wrapper's own stdout and stderr as cron leaves them: a log file on a full disk (/dev/full
// gives a real ENOSPC on every write), or closed. A diagnostic that cannot be written must not
// change what happens to the child.
import { execa } from 'execa';
import { closeSync, openSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, baseEnv, makeRuntimeDir, removeDir, wrapperDirs, writeEnvFile } from '../helpers/cli.js';

let dir: string;
let envFile: string;
let full: number;
beforeEach(() => {
  dir = makeRuntimeDir();
  envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123-secret\n');
  full = openSync('/dev/full', 'w');
});
afterEach(() => {
  closeSync(full);
  removeDir(dir);
});

const run = (args: string[], stdio: { stdout?: number; stderr?: number }) =>
  execa(BIN, args, { reject: false, extendEnv: false, env: baseEnv(dir), stdin: 'ignore', stdout: stdio.stdout ?? 'pipe', stderr: stdio.stderr ?? 'pipe' });

describe('stderr on a full disk', () => {
  it('the child runs to its end with its secrets file, and its exit status is the wrapper\'s', async () => {
    // -v writes lines before and after the child starts: each write fails with ENOSPC.
    const result = await run(['-v', '--env-file', envFile, '--inject-as', 'file', '--', 'sh', '-c', 'sleep 0.3; cat "$SECRETS_FILE"; exit 3'], { stderr: full });
    expect(result.stdout).toBe("API_KEY='abc123-secret'");
    expect(result.exitCode).toBe(3);
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('a usage error still exits 125', async () => {
    const result = await run(['--no-such-flag', '--', 'true'], { stderr: full });
    expect(result.exitCode).toBe(125);
  });
});

describe('stdout on a full disk', () => {
  const FAILED = "run-with-secrets: error RWS_OUTPUT_FAILED: could not write to stdout (ENOSPC): what was written there is incomplete (hint: check where stdout goes: a full disk (ENOSPC), a quota (EDQUOT) or a size limit (EFBIG))";

  it.each([
    ['--dry-run', ['--env-file', '.env', '--dry-run']],
    ['--help', ['--help']],
    ['completion', ['completion']],
  ])('%s fails with 125 and says why, where it said RWS_INTERNAL', async (_, args) => {
    const result = await run(args.map((word) => (word === '.env' ? envFile : word)), { stdout: full });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toBe(FAILED);
  });

  it('--mask: the child runs to its end and keeps its status; the lost output is said', async () => {
    const result = await run(['--env-file', envFile, '--mask', '--', 'sh', '-c', 'echo one; sleep 0.2; echo two; echo "stderr still goes through" >&2; exit 4'], { stdout: full });
    expect(result.exitCode).toBe(4);
    expect(result.stderr).toBe("stderr still goes through\nrun-with-secrets: error RWS_OUTPUT_FAILED: could not write the child's output to stdout (ENOSPC): some of it is lost (hint: check where stdout goes: a full disk (ENOSPC), a quota (EDQUOT) or a size limit (EFBIG))");
  });
});
