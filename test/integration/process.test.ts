import { execa } from 'execa';
import { chmodSync, closeSync, copyFileSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseProcStat } from '../../src/process/proc-stat.js';
import { BIN, baseEnv, fixture, makeRuntimeDir, makeSharedDir, removeDir, runBin, waitForLine, writeEnvFile } from '../helpers/cli.js';

let dir: string;
let envFile: string;
beforeEach(() => {
  dir = makeRuntimeDir();
  envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123-secret\nSHORT=ab\n');
});
afterEach(() => removeDir(dir));

describe('exit status', () => {
  it.each([0, 1, 3, 125, 255])('is the child exit code %i', async (code) => {
    const result = await runBin(['--env-file', envFile, '--', fixture('exit-with.mjs'), String(code)], { runtimeDir: dir });
    expect(result.exitCode).toBe(code);
    expect(result.signal).toBeUndefined();
  });

  it.each(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2', 'SIGKILL', 'SIGPIPE', 'SIGUSR1', 'SIGALRM', 'SIGPWR'] as const)(
    'the wrapper dies of the signal that killed the child (%s)',
    async (signal) => {
      const result = await runBin(['--env-file', envFile, '--', fixture('kill-self.mjs'), signal], { runtimeDir: dir });
      expect(result.signal).toBe(signal);
      expect(result.stderr).toBe('');
    },
  );

  it.each([
    ['SIGSEGV', 139],
    ['SIGABRT', 134],
    ['SIGQUIT', 131],
    ['SIGXCPU', 152],
  ] as const)('for core-dumping %s it exits 128+N instead', async (signal, status) => {
    const result = await runBin(['--env-file', envFile, '--', fixture('kill-self.mjs'), signal], { runtimeDir: dir });
    expect(result.signal).toBeUndefined();
    expect(result.exitCode).toBe(status);
  });

  it('a shell sees the signal death: $? is 128+N and the status is a signal', async () => {
    const script = `"${BIN}" --env-file "${envFile}" -- "${fixture('kill-self.mjs')}" SIGTERM; echo "status=$?"`;
    const result = await execa('bash', ['-c', script], { reject: false, extendEnv: false, stdin: 'ignore', env: baseEnv(dir) });
    expect(result.stdout.trim()).toBe('status=143');
  });
});

describe('a script whose #! interpreter does not exist', () => {
  // execve says ENOENT, as for a missing command: the file is there, its #! line is at fault.
  const script = (name: string, shebang: string): string => {
    const path = join(dir, name);
    writeFileSync(path, `${shebang}\necho ran\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it('names the interpreter and exits 127, as a shell does', async () => {
    const path = script('legacy.sh', '#!/usr/bin/no-such-python -u');
    const result = await runBin(['--env-file', envFile, '--', path], { runtimeDir: dir });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toBe(`run-with-secrets: error RWS_COMMAND_NOT_FOUND: cannot execute ${path}: its #! line names the interpreter /usr/bin/no-such-python, which does not exist (hint: install that interpreter, or correct the script's #! line)`);
  });

  it('a #! line ending in a carriage return (Windows line endings) is said as such, found on PATH too', async () => {
    script('crlf-job', '#!/bin/sh\r');
    const result = await runBin(['--env-file', envFile, '--', 'crlf-job'], { runtimeDir: dir, env: { PATH: `${dir}:/usr/bin:/bin` } });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain('error RWS_COMMAND_NOT_FOUND: cannot execute crlf-job: its #! line names the interpreter /bin/sh\\u000d, which does not exist (hint: the script has Windows line endings (CRLF)');
  });
});

describe('a command that is there but cannot run now', () => {
  it('one being written (a deploy copying it, ETXTBSY) is 126 with what to do, not a hint at system limits', async () => {
    const program = join(dir, 'job');
    copyFileSync('/bin/true', program);
    chmodSync(program, 0o755);
    const writer = openSync(program, 'a');
    try {
      const result = await runBin(['--env-file', envFile, '--', program], { runtimeDir: dir });
      expect(result.exitCode).toBe(126);
      expect(result.stderr).toBe(`run-with-secrets: error RWS_COMMAND_NOT_EXECUTABLE: cannot execute ${program}: ETXTBSY (the file is open for writing) (hint: start it once the copy or build writing it is done; install programs by writing a new file and renaming it over the old one)`);
    } finally {
      closeSync(writer);
    }
  });

  it('a path through a file (ENOTDIR) is 126, as a shell says', async () => {
    const result = await runBin(['--env-file', envFile, '--', `${envFile}/job`], { runtimeDir: dir });
    expect(result.exitCode).toBe(126);
    expect(result.stderr).toBe(`run-with-secrets: error RWS_COMMAND_NOT_EXECUTABLE: cannot execute ${envFile}/job: ENOTDIR (a part of its path is not a directory) (hint: check the path of the command)`);
  });
});

describe('signal forwarding (not on a terminal)', () => {
  it.each(['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGQUIT', 'SIGWINCH'] as const)('forwards %s to the child', async (signal) => {
    const child = runBin(['--env-file', envFile, '--', fixture('trap.mjs'), 'SIGUSR2'], { runtimeDir: dir });
    await waitForLine(child.stdout!, 'ready ');
    child.kill(signal);
    await waitForLine(child.stdout!, `signal ${signal}`);
    if (signal !== 'SIGUSR2') child.kill('SIGUSR2');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split('\n').filter((line) => line === `signal ${signal}`)).toHaveLength(1);
  });

  // Their default action would end the wrapper: caught, they go to the child, and the run goes on
  // as long as the child does.
  it.each(['SIGABRT', 'SIGALRM', 'SIGVTALRM', 'SIGXCPU', 'SIGIO', 'SIGPWR', 'SIGSTKFLT'] as const)('forwards %s to a child that catches it, and lives on', async (signal) => {
    const child = runBin(['--env-file', envFile, '--', fixture('trap.mjs'), 'SIGUSR2', signal], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number };
    try {
      child.kill(signal);
      await waitForLine(child.stdout!, `signal ${signal}`, 3000);
      child.kill('SIGUSR2');
      const result = await child;
      expect(result.exitCode).toBe(0);
      expect(result.stdout.split('\n').filter((line) => line === `signal ${signal}`)).toHaveLength(1);
    } finally {
      // A wrapper killed by the signal would leave its child running, holding our pipes.
      try {
        process.kill(ready.pid, 'SIGKILL');
      } catch {
        // Gone with the run, as it should be.
      }
    }
  });

  it('--kill-after escalates to SIGKILL when the child ignores the stop signal', async () => {
    const child = runBin(['--env-file', envFile, '--kill-after', '0.3', '--', fixture('trap.mjs')], { runtimeDir: dir });
    await waitForLine(child.stdout!, 'ready ');
    child.kill('SIGTERM');
    const result = await child;
    expect(result.stdout).toContain('signal SIGTERM');
    expect(result.signal).toBe('SIGKILL');
  });

  it('a second SIGINT escalates to SIGKILL', async () => {
    const child = runBin(['--env-file', envFile, '--', fixture('trap.mjs')], { runtimeDir: dir });
    await waitForLine(child.stdout!, 'ready ');
    child.kill('SIGINT');
    await waitForLine(child.stdout!, 'signal SIGINT');
    child.kill('SIGINT');
    const result = await child;
    expect(result.signal).toBe('SIGKILL');
  });

  it('SIGUSR1 does not open the Node inspector in the wrapper', async () => {
    const child = runBin(['--env-file', envFile, '--', fixture('trap.mjs'), 'SIGTERM'], { runtimeDir: dir });
    await waitForLine(child.stdout!, 'ready ');
    child.kill('SIGUSR1');
    await waitForLine(child.stdout!, 'signal SIGUSR1');
    child.kill('SIGTERM');
    const result = await child;
    expect(result.stderr).not.toContain('Debugger listening');
    expect(result.exitCode).toBe(0);
  });
});

describe('on a terminal', () => {
  // `script` gives the wrapper a real pseudo-terminal; Ctrl-C typed there reaches the whole
  // foreground process group, so the wrapper must not forward it a second time.
  it('a Ctrl-C reaches the child exactly once', async () => {
    // bash reports our status itself: a plain `sh -c` (dash) in between would die of the SIGINT it saw.
    const inner = `"${BIN}" --env-file "${envFile}" -- "${fixture('trap.mjs')}" SIGINT; echo "wrapper-status=$?"`;
    const session = execa('script', ['-qfec', inner, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(dir, { TERM: 'dumb', SHELL: '/bin/bash' }), stdin: 'pipe' });
    await waitForLine(session.stdout!, 'ready ');
    session.stdin!.write('\x03');
    const result = await session;
    // The terminal echoes ^C on the same line, before the child's report.
    expect(result.stdout.match(/signal SIGINT/g)).toHaveLength(1);
    expect(result.stdout).toContain('wrapper-status=0');
  });

  /** The wrapper's pid: the parent of the child that printed `ready`. */
  const parentOf = (readyLine: string): number => {
    const { pid } = JSON.parse(readyLine.slice(6)) as { pid: number };
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.ppid ?? Number.NaN;
  };

  it('a Ctrl-C reaches the child exactly once when the wrapper\'s stdin, stdout and stderr are not the terminal', async () => {
    const out = join(dir, 'out');
    writeFileSync(out, '');
    const inner = `"${BIN}" --env-file "${envFile}" -- "${fixture('trap.mjs')}" SIGUSR2 >"${out}" 2>&1 </dev/null; echo "wrapper-status=$?"`;
    const session = execa('script', ['-qfec', inner, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(dir, { TERM: 'dumb', SHELL: '/bin/bash' }), stdin: 'pipe' });
    const ready = await waitForFileLine(out, 'ready ');
    session.stdin!.write('\x03');
    await waitForFileLine(out, 'signal SIGINT');
    // Forwarded by the wrapper after any SIGINT it forwarded: the child prints them in order.
    process.kill(parentOf(ready), 'SIGUSR2');
    const result = await session;
    expect(result.stdout).toContain('wrapper-status=0');
    expect(readFileSync(out, 'utf8').split('\n').filter((line) => line.startsWith('signal '))).toEqual(['signal SIGINT', 'signal SIGUSR2']);
  });

  it('a SIGINT sent to a wrapper outside the terminal\'s foreground group (setsid) is forwarded, though its output is the terminal', async () => {
    const session = execa('script', ['-qfec', `setsid -w "${BIN}" --env-file "${envFile}" -- "${fixture('trap.mjs')}" SIGUSR2`, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(dir, { TERM: 'dumb', SHELL: '/bin/sh' }), stdin: 'pipe' });
    const wrapper = parentOf(await waitForLine(session.stdout!, 'ready '));
    try {
      process.kill(wrapper, 'SIGINT');
      await waitForLine(session.stdout!, 'signal SIGINT', 5000);
      process.kill(wrapper, 'SIGUSR2');
      const result = await session;
      expect(result.stdout.split(/\r?\n/).filter((line) => line.startsWith('signal '))).toEqual(['signal SIGINT', 'signal SIGUSR2']);
    } finally {
      // Its own session: nothing else would stop it if the test failed.
      try {
        process.kill(-wrapper, 'SIGKILL');
      } catch {
        // Gone with the run, as it should be.
      }
    }
  });
});

/** Waits until `file` holds a line starting with `prefix`; returns it. */
async function waitForFileLine(file: string, prefix: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = readFileSync(file, 'utf8').split('\n').find((candidate) => candidate.startsWith(prefix));
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`timed out waiting for "${prefix}" in ${file}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('colour', () => {
  // The warning used to see colour needs a .env that others can really reach.
  let sharedDir: string;
  beforeEach(() => {
    sharedDir = makeSharedDir();
  });
  afterEach(() => removeDir(sharedDir));

  async function warningOnPty(extra: Record<string, string>): Promise<string> {
    const shared = writeEnvFile(sharedDir, 'shared.env', 'A=1\n', 0o644);
    const inner = `"${BIN}" --env-file "${shared}" -- true`;
    const result = await execa('script', ['-qfec', inner, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(dir, { TERM: 'xterm', SHELL: '/bin/bash', ...extra }) });
    expect(result.stdout).toContain('RWS_SOURCE_PERMISSIONS');
    return result.stdout;
  }

  it('is used on a terminal, and never with NO_COLOR or without a terminal', async () => {
    expect(await warningOnPty({})).toContain('\u001b[');
    expect(await warningOnPty({ NO_COLOR: '1' })).not.toContain('\u001b[');
    const shared = writeEnvFile(sharedDir, 'shared.env', 'A=1\n', 0o644);
    const piped = await runBin(['--env-file', shared, '--', 'true'], { runtimeDir: dir, env: { TERM: 'xterm' } });
    expect(piped.stderr).toContain('RWS_SOURCE_PERMISSIONS');
    expect(piped.stderr).not.toContain('\u001b[');
  });
});

describe('--mask', () => {
  it('replaces values and their encoded forms in stdout and stderr', async () => {
    const value = 'abc123-secret';
    const forms = [value, Buffer.from(value).toString('base64'), encodeURIComponent('abc123-secret'), JSON.stringify(value).slice(1, -1)];
    const result = await runBin(['--env-file', envFile, '--mask', '--', fixture('echo-args.mjs'), ...forms.map((form) => `value=${form};`), 'plain text'], { runtimeDir: dir });
    expect(result.exitCode).toBe(0);
    for (const output of [result.stdout, result.stderr]) {
      expect(output).not.toContain(value);
      expect(output).not.toContain(forms[1]);
      expect(output).toContain('value=******;');
      expect(output).toContain('plain text');
    }
    expect(result.stderr).toContain('RWS_MASK_SHORT_VALUE');
    expect(result.stderr).toContain('SHORT');
  });

  it('catches a value written one byte at a time', async () => {
    const result = await runBin(['--env-file', envFile, '--mask', '--', fixture('echo-args.mjs'), '--slow', 'before abc123-secret after'], { runtimeDir: dir });
    expect(result.stdout).toBe('before ****** after');
  });

  it('does not outlive the child when a grandchild keeps the output pipe open', async () => {
    const result = await runBin(['--env-file', envFile, '--mask', '--', 'sh', '-c', 'sleep 60 & echo "grandchild=$!"; echo started abc123-secret'], { runtimeDir: dir });
    const grandchild = Number(/grandchild=(\d+)/.exec(result.stdout)?.[1]);
    if (grandchild > 0) process.kill(grandchild, 'SIGKILL');
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('started ******');
    expect(grandchild).toBeGreaterThan(0);
  });

  it('a reader that goes away ends the run as without --mask: the child dies of SIGPIPE, 141, at once', async () => {
    const pipeline = (mask: string[]) =>
      execa('bash', ['-c', '"$0" --env-file "$1" "${@:2}" -- yes | head -1; echo "status=${PIPESTATUS[0]}"', BIN, envFile, ...mask], {
        env: baseEnv(dir),
        extendEnv: false,
        reject: false,
        stdin: 'ignore',
        timeout: 10_000,
      });
    const [plain, masked] = await Promise.all([pipeline([]), pipeline(['--mask'])]);
    expect(plain.stdout).toBe('y\nstatus=141');
    expect(masked.timedOut).toBe(false);
    expect(masked.stdout).toBe(plain.stdout);
    expect(masked.stderr).not.toContain('Connection reset');
  });

  it('a child that ignores SIGPIPE gets a write error instead, and the run ends', async () => {
    const result = await execa('bash', ['-c', '"$0" --env-file "$1" --mask -- sh -c "trap \'\' PIPE; yes" | head -1; echo "status=${PIPESTATUS[0]}"', BIN, envFile], {
      env: baseEnv(dir),
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 10_000,
    });
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toBe('y\nstatus=1');
  });

  it('a reader slower than the child holds the child, as a pipe would, rather than the wrapper keeping all it wrote in memory', async () => {
    // The reader waits up to 3 s for the child to have written 64 MiB, reading nothing: held by
    // the pipes, the child cannot get there; buffered by the wrapper, it got there at once.
    const marker = join(dir, 'wrote-all');
    const reader = `for i in $(seq 60); do [ -e "${marker}" ] && break; sleep 0.05; done; [ -e "${marker}" ] && echo "child-done-before-reading"; wc -c`;
    const script = `"$0" --env-file "$1" --mask -- sh -c 'head -c 67108864 /dev/zero; touch "$1"' sh "$2" | sh -c '${reader.replace(/'/g, "'\\''")}'`;
    const result = await execa('bash', ['-c', script, BIN, envFile, marker], { env: baseEnv(dir), extendEnv: false, reject: false, stdin: 'ignore', timeout: 30_000 });
    expect(result.stdout.trim()).toBe('67108864');
  });

  it('a reader that stalls after the child has exited still gets all the child wrote: the wrapper waits for it', async () => {
    // 300 kB fit in the pipes between the child and the reader, so the child writes them all and
    // exits while the reader takes nothing; the reader comes back 2 s later. The second the
    // wrapper waits after the child's exit is for a grandchild holding the pipes open, not for
    // output the reader has not taken yet: the wrapper must still be there, holding the rest.
    const childDone = join(dir, 'child-done');
    const wrapperDone = join(dir, 'wrapper-done');
    const reader = `for i in $(seq 200); do [ -e "${childDone}" ] && break; sleep 0.05; done; sleep 2; [ -e "${wrapperDone}" ] && echo "wrapper gone before the reader came back"; wc -c`;
    const script = `{ "$0" --env-file "$1" --mask -- sh -c 'head -c 300000 /dev/zero; touch "$0"' "$2"; touch "$3"; } | sh -c '${reader}'`;
    const result = await execa('bash', ['-c', script, BIN, envFile, childDone, wrapperDone], { env: baseEnv(dir), extendEnv: false, reject: false, stdin: 'ignore', timeout: 30_000 });
    expect(result.stdout.trim()).toBe('300000');
  });

  it('a grandchild writing for ever to a reader slower than it does not keep the wrapper past its child', async () => {
    // `yes` outlives its parent and always has more than the reader takes: the wait for the
    // reader is bounded by what the child could have left in the pipes, so the wrapper ends with
    // the child's status (and `yes` gets SIGPIPE once the wrapper's end of its pipe is gone).
    const reader = 'while n=$(head -c 65536 | wc -c); [ "$n" -gt 0 ]; do sleep 0.05; done';
    const script = `{ "$0" --env-file "$1" --mask -- sh -c 'yes & exit 3'; echo "wrapper status $?" >&2; } | sh -c '${reader}'`;
    const result = await execa('bash', ['-c', script, BIN, envFile], { env: baseEnv(dir), extendEnv: false, reject: false, stdin: 'ignore', timeout: 30_000 });
    expect(result.timedOut).toBe(false);
    expect(result.stderr).toContain('wrapper status 3');
  });

  it('passes output through unchanged when no secret appears, and keeps the exit code', async () => {
    const result = await runBin(['--env-file', envFile, '--mask', '--', 'sh', '-c', 'printf "abc\\nabc1"; exit 7'], { runtimeDir: dir });
    expect(result.stdout).toBe('abc\nabc1');
    expect(result.exitCode).toBe(7);
  });
});
