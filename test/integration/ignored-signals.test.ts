// Signals ignored when the wrapper starts (nohup, a background job of a non-interactive shell)
// stay ignored: the child inherits them ignored, as under env(1), and the wrapper neither dies of
// them nor forwards them. Checked with the real nohup and the kernel's view (/proc/PID/status).
import { execa } from 'execa';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, baseEnv, fixture, makeRuntimeDir, removeDir, waitForLine, writeEnvFile } from '../helpers/cli.js';

let dir: string;
let envFile: string;
beforeEach(() => {
  dir = makeRuntimeDir();
  envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123-secret\n');
});
afterEach(() => removeDir(dir));

const SIGHUP_BIT = 1n << 0n;
const SIGINT_BIT = 1n << 1n;
const SIGQUIT_BIT = 1n << 2n;

/** The ignored-signal mask of a process, as the kernel has it. */
function sigIgn(pid: number): bigint {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith('SigIgn:'))!;
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}

const printOwnMask = ['sh', '-c', 'grep SigIgn /proc/$$/status'];
const maskOf = (stdout: string): bigint => BigInt(`0x${/SigIgn:\s+([0-9a-f]+)/.exec(stdout)![1]}`);

describe('signals ignored when the wrapper starts', () => {
  it('under nohup the child inherits SIGHUP ignored, as the bare command does', async () => {
    const bare = await execa('nohup', printOwnMask, { env: baseEnv(dir), extendEnv: false, reject: false });
    const wrapped = await execa('nohup', [BIN, '--env-file', envFile, '--', ...printOwnMask], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(wrapped.exitCode, wrapped.stderr).toBe(0);
    expect(maskOf(bare.stdout) & SIGHUP_BIT).toBe(SIGHUP_BIT);
    expect(maskOf(wrapped.stdout)).toBe(maskOf(bare.stdout));
  });

  it('a SIGHUP to a nohup-ed wrapper is neither forwarded nor fatal; the child keeps running', async () => {
    const run = execa('nohup', [BIN, '--env-file', envFile, '--', fixture('trap.mjs'), 'SIGTERM'], { env: baseEnv(dir), extendEnv: false, reject: false });
    const ready = JSON.parse((await waitForLine(run.stdout!, 'ready ')).slice(6)) as { pid: number };
    // nohup exec'd the wrapper: run.pid is the wrapper itself.
    run.kill('SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sigIgn(run.pid!) & SIGHUP_BIT).toBe(0n); // the wrapper catches it (Node cannot leave it SIG_IGN)...
    expect(readFileSync(`/proc/${ready.pid}/status`, 'utf8')).toMatch(/State:\s+[SR]/); // ...and the child lives
    run.kill('SIGTERM');
    const result = await run;
    expect(result.exitCode).toBe(0);
    // The child's trap.mjs prints every signal it is sent: SIGTERM only, never SIGHUP.
    expect(result.stdout).toContain('signal SIGTERM');
    expect(result.stdout).not.toContain('signal SIGHUP');
  });

  it('as a background job of a non-interactive shell, the child inherits SIGINT and SIGQUIT ignored', async () => {
    const script = `"$0" --env-file "$1" -- sh -c 'grep SigIgn /proc/$$/status' & wait`;
    const result = await execa('sh', ['-c', script, BIN, envFile], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(maskOf(result.stdout) & (SIGINT_BIT | SIGQUIT_BIT)).toBe(SIGINT_BIT | SIGQUIT_BIT);
  });

  it('a SIGINT to such a background wrapper does not stop the child', async () => {
    const script = `"$0" --env-file "$1" -- "$2" SIGTERM & wait`;
    const run = execa('sh', ['-c', script, BIN, envFile, fixture('trap.mjs')], { env: baseEnv(dir), extendEnv: false, reject: false });
    const ready = JSON.parse((await waitForLine(run.stdout!, 'ready ')).slice(6)) as { pid: number };
    const wrapperPid = Number(readFileSync(`/proc/${ready.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    process.kill(wrapperPid, 'SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sigIgn(wrapperPid) & SIGINT_BIT).toBe(0n); // caught by the wrapper, which lives on
    expect(readFileSync(`/proc/${ready.pid}/status`, 'utf8')).toMatch(/State:\s+[SR]/);
    process.kill(wrapperPid, 'SIGTERM');
    const result = await run;
    expect(result.stdout).not.toContain('signal SIGINT');
    expect(result.stdout).toContain('signal SIGTERM');
  });

  it('so does one whose default action would end the wrapper (SIGALRM): neither forwarded nor fatal', async () => {
    // Node resets SIGALRM to its default at start: only a listener keeps the wrapper alive.
    const script = `trap '' ALRM; exec "$0" --env-file "$1" -- "$2" SIGTERM SIGALRM`;
    const run = execa('sh', ['-c', script, BIN, envFile, fixture('trap.mjs')], { env: baseEnv(dir), extendEnv: false, reject: false });
    const ready = JSON.parse((await waitForLine(run.stdout!, 'ready ')).slice(6)) as { pid: number };
    try {
      // sh exec'd the wrapper: run.pid is the wrapper itself.
      run.kill('SIGALRM');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(readFileSync(`/proc/${run.pid!}/status`, 'utf8')).toMatch(/State:\s+[SR]/);
      expect(readFileSync(`/proc/${ready.pid}/status`, 'utf8')).toMatch(/State:\s+[SR]/);
      run.kill('SIGTERM');
      const result = await run;
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toContain('signal SIGTERM');
      expect(result.stdout).not.toContain('signal SIGALRM');
    } finally {
      try {
        process.kill(ready.pid, 'SIGKILL');
      } catch {
        // Gone with the run.
      }
    }
  });

  it('with nothing ignored, nothing is: the child starts with the default dispositions', async () => {
    const result = await execa(BIN, ['--env-file', envFile, '--', ...printOwnMask], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(maskOf(result.stdout)).toBe(0n);
  });

  it('a missing or non-executable command is still reported by the wrapper, with 127 and 126', async () => {
    const missing = await execa('nohup', [BIN, '--env-file', envFile, '--', 'no-such-command-rws'], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('error RWS_COMMAND_NOT_FOUND: command not found: no-such-command-rws');
    const denied = await execa('nohup', [BIN, '--env-file', envFile, '--', fixture('not-executable.sh')], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(denied.exitCode).toBe(126);
    expect(denied.stderr).toContain('error RWS_COMMAND_NOT_EXECUTABLE');
  });

  it('so is a script whose #! interpreter does not exist, where sh would say "not found" of the script', async () => {
    const script = join(dir, 'crlf.sh');
    writeFileSync(script, '#!/bin/sh\r\necho ran\n', { mode: 0o755 });
    const result = await execa('nohup', [BIN, '--env-file', envFile, '--', script], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain(`error RWS_COMMAND_NOT_FOUND: cannot execute ${script}: its #! line names the interpreter /bin/sh\\u000d, which does not exist`);
  });

  it('the child gets its arguments untouched and the secrets as usual', async () => {
    const result = await execa('nohup', [BIN, '--env-file', envFile, '--', fixture('echo-args.mjs'), '$0', '', '"$@"', "it's"], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe(['$0', '', '"$@"', "it's"].join('\n'));
  });

  it('a secret named for a variable the trampoline sh sets itself is refused, its value never printed', async () => {
    // dash dies on a non-numeric OPTIND, quoting it ("Illegal number: ..."), and rewrites PPID and PWD.
    const names = writeEnvFile(dir, 'shell.env', 'OPTIND=hunter2-optind\nPPID=hunter2-ppid\n');
    const refused = await execa('nohup', [BIN, '--env-file', names, '--', 'env'], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain('error RWS_NAME_PROTECTED: secret name OPTIND cannot reach the child unchanged: SIGHUP was ignored');
    expect(`${refused.stdout}${refused.stderr}`).not.toContain('hunter2');
    // Not through sh: a file carries them, and without nohup the env does.
    const file = await execa('nohup', [BIN, '--env-file', names, '--inject-as', 'file', '--', 'sh', '-c', 'cat "$SECRETS_FILE"'], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(file.stdout).toBe("OPTIND='hunter2-optind'\nPPID='hunter2-ppid'");
    const direct = await execa(BIN, ['--env-file', names, '--', 'env'], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(direct.stdout.split('\n')).toEqual(expect.arrayContaining(['OPTIND=hunter2-optind', 'PPID=hunter2-ppid']));
  });
});
