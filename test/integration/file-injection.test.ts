import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { parse } from 'dotenv';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, baseEnv, fixture, makeRuntimeDir, removeDir, runBin, waitForLine, wrapperDirs, writeEnvFile } from '../helpers/cli.js';
import { processStartTicks } from '../../src/process/start-time.js';

let dir: string;
beforeEach(() => {
  dir = makeRuntimeDir();
});
afterEach(() => removeDir(dir));

const HOSTILE: Record<string, string> = {
  SINGLE: "it's",
  DOUBLE: 'say "hi"',
  HASH: 'a # not a comment',
  DOLLAR: '$HOME ${HOME} $(id)',
  EQUALS: 'a=b=c',
  BACKSLASH: 'C:\\path\\n\\t',
  NEWLINES: 'line1\nline2\n',
  SPACES: '  padded  ',
  UNICODE: 'héllo wörld ✓ 日本',
  EMPTY: '',
};

/** A .env holding the hostile values (double-quoted, so what dotenv reads is the reference). */
function envFileFor(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join('\n');
}

describe('--inject-as file', () => {
  it('writes a 0600 file in a 0700 directory, hands its path over, keeps secrets out of the env, and removes it', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\nDB_PASS=p@ss\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'file', '--', fixture('trap.mjs'), 'SIGUSR1'], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as Record<string, string>;
    expect(ready.file!.startsWith(dir)).toBe(true);
    expect(ready.fileMode).toBe('600');
    expect(ready.dirMode).toBe('700');
    expect(parse(ready.content!)).toEqual({ API_KEY: 'abc123', DB_PASS: 'p@ss' });
    expect(existsSync(ready.file!)).toBe(true);
    child.kill('SIGUSR1');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(existsSync(ready.dir!)).toBe(false);
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('the child gets the path, not the secrets, as variables; --file-var renames the variable', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const result = await runBin(['--env-file', envFile, '--inject-as', 'file', '--file-var', 'MY_SECRETS', '--', fixture('print-env.mjs')], { runtimeDir: dir });
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env).not.toHaveProperty('API_KEY');
    expect(env.MY_SECRETS).toMatch(/rws-\d+-\d+-\w{6}\/secrets\.env$/);
    expect(existsSync(env.MY_SECRETS!)).toBe(false);
  });

  it('values of the common dotenv subset round-trip exactly; one outside it is refused before anything runs', async () => {
    // The subset and its readers are tested in dotenv-readers.test.ts; here, through the wrapper.
    const carried = { SINGLE: "it's", DOUBLE: 'say "hi"', HASH: 'a # not a comment', DOLLAR: '$HOME $(id)', EQUALS: 'a=b=c', BACKSLASH: 'C:\\path\\n\\t', SPACES: '  padded  ', UNICODE: 'héllo wörld ✓ 日本', EMPTY: '' };
    // Single quotes keep the backslashes literally where dotenv reads the source.
    const envFile = writeEnvFile(dir, '.env', Object.entries(carried).map(([name, value]) => (value.includes("'") ? `${name}="${value}"` : `${name}='${value}'`)).join('\n'));
    const script = `process.stdout.write(require('fs').readFileSync(process.env.SECRETS_FILE,'utf8'))`;
    const result = await runBin(['--env-file', envFile, '--inject-as', 'file', '--', 'node', '-e', script], { runtimeDir: dir });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(parse(result.stdout)).toEqual(carried);

    const refused = await runBin(['--env-file', writeEnvFile(dir, 'multi.env', envFileFor(HOSTILE)), '--inject-as', 'file', '--', 'sh', '-c', 'echo ran'], { runtimeDir: dir });
    expect(refused.exitCode).toBe(125);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/error RWS_FORMAT_UNSUPPORTED: the value of (DOLLAR|NEWLINES) cannot be written exactly as dotenv: .*\(hint: use --file-format json or --file-format shell\)/);
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('hostile values round-trip exactly through `. file` in bash and sh (shell format)', async () => {
    const envFile = writeEnvFile(dir, '.env', envFileFor(HOSTILE));
    const expected = parse(readFileSync(envFile));
    for (const shell of ['bash', 'sh']) {
      const script = `. "$SECRETS_FILE"; node -e 'const o={};for(const k of process.argv.slice(1))o[k]=process.env[k];console.log(JSON.stringify(o))' ${Object.keys(HOSTILE).join(' ')}`;
      const result = await runBin(['--env-file', envFile, '--inject-as', 'file', '--file-format', 'shell', '--', shell, '-c', script], { runtimeDir: dir });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout), shell).toEqual(expected);
    }
  });

  it('json format is one object that parses back exactly', async () => {
    const envFile = writeEnvFile(dir, '.env', envFileFor(HOSTILE));
    const script = `process.stdout.write(require('fs').readFileSync(process.env.SECRETS_FILE,'utf8'))`;
    const result = await runBin(['--env-file', envFile, '--inject-as', 'file', '--file-format', 'json', '--', 'node', '-e', script], { runtimeDir: dir });
    expect(JSON.parse(result.stdout)).toEqual(parse(readFileSync(envFile)));
  });

  it('a value mixing both quotes is refused as dotenv and carried exactly as json', async () => {
    const envFile = writeEnvFile(dir, '.env', 'SAFE=1\nMIXED="it\'s # `x` \\"quoted\\""\n');
    const expected = parse(readFileSync(envFile));
    const refused = await runBin(['--env-file', envFile, '--inject-as', 'file', '--', 'sh', '-c', 'cat "$SECRETS_FILE"'], { runtimeDir: dir });
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain('RWS_FORMAT_UNSUPPORTED: the value of MIXED');
    const result = await runBin(['--env-file', envFile, '--inject-as', 'file', '--file-format', 'json', '--', 'sh', '-c', 'cat "$SECRETS_FILE"'], { runtimeDir: dir });
    expect(JSON.parse(result.stdout)).toEqual(expected);
    expect(wrapperDirs(dir)).toEqual([]);
  });
});

/**
 * Writes `content` whole into a FIFO once its reader (the wrapper) has opened it. Opening for
 * writing without O_NONBLOCK would block the test's event loop until then, or for ever.
 */
async function writeToFifo(path: string, content: string): Promise<void> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    } catch (error) {
      // ENXIO: no reader yet.
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO') throw error;
      await new Promise((resolve) => setTimeout(resolve, 1));
      continue;
    }
    try {
      // Below the pipe's 64 KiB: one write, never EAGAIN.
      writeSync(fd, content);
    } finally {
      closeSync(fd);
    }
    return;
  }
  throw new Error(`nobody opened ${path} for reading`);
}

/** Resolves once `pid` is gone (an orphan is reaped by init, not by us). */
async function waitForExit(pid: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`process ${pid} did not exit`);
}

describe('--inject-as fd', () => {
  it('nothing exists on disk while the child runs; the child reads /dev/fd/3 by path, twice', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'fd', '--', fixture('trap.mjs'), 'SIGTERM'], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as Record<string, string>;
    expect(ready.file).toBe('/dev/fd/3');
    expect(parse(ready.content!)).toEqual({ API_KEY: 'abc123' });
    expect(wrapperDirs(dir)).toEqual([]);
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);

    const twice = await runBin(['--env-file', envFile, '--inject-as', 'fd', '--file-format', 'json', '--', fixture('read-fd-twice.mjs')], { runtimeDir: dir });
    const read = JSON.parse(twice.stdout) as { first: string; second: string };
    expect(JSON.parse(read.first)).toEqual({ API_KEY: 'abc123' });
    expect(read.second).toBe(read.first);
  });

  it('survives SIGKILL of the wrapper with nothing left behind', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'fd', '--', fixture('trap.mjs')], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number };
    child.kill('SIGKILL');
    process.kill(ready.pid, 'SIGKILL');
    await child;
    expect(wrapperDirs(dir)).toEqual([]);
  });
});

describe('the secrets file is removed on every way out', () => {
  function runFileMode(args: string[], env: Record<string, string> = {}) {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    return runBin(['--env-file', envFile, '--inject-as', 'file', ...args], { runtimeDir: dir, env });
  }

  it.each([0, 1, 42, 255])('child exits with %i', async (code) => {
    const result = await runFileMode(['--', fixture('exit-with.mjs'), String(code)]);
    expect(result.exitCode).toBe(code);
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('child killed by a signal', async () => {
    const result = await runFileMode(['--', fixture('kill-self.mjs'), 'SIGTERM']);
    expect(result.signal).toBe('SIGTERM');
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('the wrapper receives %s (forwarded; the child exits)', async (signal) => {
    const child = runFileMode(['--', fixture('trap.mjs'), signal]);
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { dir: string };
    expect(existsSync(ready.dir)).toBe(true);
    child.kill(signal);
    const result = await child;
    expect(result.stdout).toContain(`signal ${signal}`);
    expect(result.exitCode).toBe(0);
    expect(existsSync(ready.dir)).toBe(false);
  });

  // Default action: the end of a process. Caught and forwarded, they end the child (trap.mjs does not
  // catch them) and then the wrapper, as the child ended, after the file; uncaught, each would end
  // the wrapper at once and leave the file.
  it.each([
    ['SIGALRM', undefined],
    ['SIGVTALRM', undefined],
    ['SIGIO', undefined],
    ['SIGPWR', undefined],
    ['SIGSTKFLT', undefined],
    ['SIGABRT', 134],
    ['SIGXCPU', 152],
  ] as const)('the wrapper receives %s (forwarded; the child dies of it)', async (signal, status) => {
    const child = runFileMode(['--', fixture('trap.mjs')]);
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number; dir: string };
    expect(existsSync(ready.dir)).toBe(true);
    child.kill(signal);
    await waitForExit(child.pid!);
    try {
      // Alive only if the wrapper died without passing the signal on: it holds our pipes.
      process.kill(ready.pid, 'SIGKILL');
    } catch {
      // Gone, as it should be.
    }
    const result = await child;
    expect(existsSync(ready.dir)).toBe(false);
    // Core-dumping signals: 128+N rather than a core of the wrapper (README, Exit status).
    if (status === undefined) expect(result.signal).toBe(signal);
    else expect([result.signal, result.exitCode]).toEqual([undefined, status]);
  });

  it('a child that ignores SIGTERM is killed by a second one; the wrapper dies of SIGKILL too, file gone', async () => {
    const child = runFileMode(['--', fixture('trap.mjs')]);
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { dir: string };
    child.kill('SIGTERM');
    await waitForLine(child.stdout!, 'signal SIGTERM');
    child.kill('SIGTERM');
    const result = await child;
    expect(result.signal).toBe('SIGKILL');
    expect(existsSync(ready.dir)).toBe(false);
  });

  it.each(['SIGTERM', 'SIGALRM'] as const)('%s before the child starts (source still loading) ends the wrapper by that signal', async (signal) => {
    const fifo = `${dir}/never-written.env`;
    execFileSync('mkfifo', [fifo]);
    const child = runBin(['--env-file', fifo, '--inject-as', 'file', '--', fixture('print-env.mjs')], { runtimeDir: dir });
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.kill(signal);
    const result = await child;
    expect(result.signal).toBe(signal);
    expect(result.stdout).toBe('');
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('a SIGTERM at any moment of the making of the file leaves no directory behind', async () => {
    // The making starts when the source has been read: written through a FIFO, the test knows when.
    // 2,000 entries take some milliseconds to parse and serialize; the delays, 0 to 20 ms after
    // that, land before, during and after the making. A leftover was found in about a third of the
    // runs when the directory was registered for cleanup only once mkdtemp had returned.
    const content = `${Array.from({ length: 2000 }, (_, index) => `KEY_${index}=value-${index}`).join('\n')}\n`;
    const runs = 40;
    for (let run = 0; run < runs; run++) {
      const fifo = join(dir, `source-${run}.env`);
      execFileSync('mkfifo', ['-m', '600', fifo]);
      const child = runBin(['--env-file', fifo, '--inject-as', 'file', '--', 'true'], { runtimeDir: dir });
      await writeToFifo(fifo, content);
      const delayMs = (run * 20) / runs;
      const until = performance.now() + delayMs;
      while (performance.now() < until);
      child.kill('SIGTERM');
      const result = await child;
      // Stopped, or (a late signal) after the child's exit: either way nothing is left.
      expect(result.signal ?? result.exitCode).toBeOneOf(['SIGTERM', 0]);
      expect(wrapperDirs(dir), `SIGTERM ${delayMs} ms after the source was read`).toEqual([]);
    }
  });

  // Deterministic where the loop above is statistical: strace holds the return of the mkdir that
  // makes the directory for half a second and the signal lands then, in the window where an
  // awaited mkdtemp had made the directory but not yet registered it for removal (the plain runs
  // fail so; a watch made its first file before it looked at a stop signal even then).
  it.each([
    ['--inject-as file', 'SIGTERM', ['--inject-as', 'file']],
    ['--inject-as file', 'SIGINT', ['--inject-as', 'file']],
    ['--inject-as fd', 'SIGTERM', ['--inject-as', 'fd']],
    ['--watch --inject-as file', 'SIGTERM', ['--watch', '--inject-as', 'file']],
  ] as const)('%s: a %s while the directory is being made (strace holds its mkdir) leaves no directory behind', async (_, signal, flags, context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const straceLog = join(dir, 'mkdir.strace');
    const traced = execa('strace', ['-f', '-qq', '-o', straceLog, '-e', 'trace=mkdir', '-e', 'inject=mkdir:delay_exit=500000', BIN, '--env-file', envFile, ...flags, '--', 'sleep', '30'], {
      extendEnv: false,
      env: baseEnv(dir),
      reject: false,
    });
    try {
      // The directory is named for the wrapper's pid; strace now holds the return of its mkdir.
      let held: RegExpExecArray | null = null;
      for (let attempt = 0; attempt < 1000 && held === null; attempt++) {
        held = /^\d+\s+mkdir\("[^"]*\/rws-(\d+)-[^"]*"/m.exec(existsSync(straceLog) ? readFileSync(straceLog, 'utf8') : '');
        if (held === null) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(held, 'the wrapper never made its directory').not.toBeNull();
      // strace may write the call's line as it enters, a moment before the kernel makes the
      // directory (seen on a loaded machine): wait for it, well within the 500 ms it is held.
      for (let attempt = 0; attempt < 60 && wrapperDirs(dir).length === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(wrapperDirs(dir)).toHaveLength(1);
      process.kill(Number(held![1]), signal);
      const result = await traced;
      expect(readFileSync(straceLog, 'utf8')).toContain('(DELAYED)');
      // strace ends as the wrapper did: by the signal, re-raised after the cleanup.
      expect(result.signal ?? result.exitCode, result.stderr).toBe(signal);
      expect(wrapperDirs(dir)).toEqual([]);
    } finally {
      traced.kill('SIGKILL');
    }
  });

  it.each(['0277', '0077', '0022'])('under umask %s the directory is exactly 0700 and the file 0600', async (umask) => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    // A umask that takes the owner's write bit would leave mkdtemp's directory 0500.
    const script = `umask ${umask}; exec "$0" --env-file "$1" --inject-as file -- sh -c 'stat -c %a "$(dirname "$SECRETS_FILE")" "$SECRETS_FILE"; cat "$SECRETS_FILE"'`;
    const result = await execa('sh', ['-c', script, BIN, envFile], { env: baseEnv(dir), extendEnv: false, reject: false });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe("700\n600\nAPI_KEY='abc123'");
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('command not found (127) and not executable (126)', async () => {
    const missing = await runFileMode(['--', 'definitely-not-a-command-xyz']);
    expect(missing.exitCode).toBe(127);
    expect(missing.stderr).toContain('RWS_COMMAND_NOT_FOUND');
    const noExec = await runFileMode(['--', fixture('not-executable.sh')]);
    expect(noExec.exitCode).toBe(126);
    expect(noExec.stderr).toContain('RWS_COMMAND_NOT_EXECUTABLE');
    // -- "$CMD" with CMD unset: as a shell says, not found (it was 126 RWS_SPAWN_FAILED, no hint).
    const empty = await runFileMode(['--', '']);
    expect(empty.exitCode).toBe(127);
    expect(empty.stderr).toBe("run-with-secrets: error RWS_COMMAND_NOT_FOUND: command not found: '' (an empty name) (hint: check the command name and the PATH the child gets (see --dry-run))");
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('leftovers of a wrapper killed with SIGKILL are removed by the next run; others are kept', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'file', '--', fixture('trap.mjs')], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number; dir: string };
    child.kill('SIGKILL');
    process.kill(ready.pid, 'SIGKILL');
    await child;
    expect(existsSync(ready.dir)).toBe(true);
    // Not ours: wrong name shape, or a live pid (our own test process).
    mkdirSync(`${dir}/rws-notapid-abcdef`);
    mkdirSync(`${dir}/rws-${process.pid}-abcdef`);
    const next = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
    expect(next.exitCode).toBe(0);
    expect(next.stderr).toContain('removed 1 leftover secrets directory');
    expect(existsSync(ready.dir)).toBe(false);
    expect(existsSync(`${dir}/rws-notapid-abcdef`)).toBe(true);
    expect(existsSync(`${dir}/rws-${process.pid}-abcdef`)).toBe(true);
  });

  it('a leftover whose pid now names a process of another start (a reused pid) is removed; one of that process, or without a start, is kept', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const stranger = execa('sleep', ['60'], { reject: false });
    try {
      const started = processStartTicks(stranger.pid!)!;
      // A wrapper with that pid and another start, killed with SIGKILL long ago; the pid has been
      // given out since. Its directory's times say nothing: made just now, as after a clock step.
      const stale = `${dir}/rws-${stranger.pid}-${Number(started) - 100}-Abc123`;
      mkdirSync(stale, { mode: 0o700 });
      writeFileSync(`${stale}/secrets.env`, "API_KEY='abc123'\n", { mode: 0o600 });
      // That very process's: kept, however old its directory looks.
      const current = `${dir}/rws-${stranger.pid}-${started}-Def456`;
      mkdirSync(current, { mode: 0o700 });
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      utimesSync(current, twoHoursAgo, twoHoursAgo);
      // An earlier release's name, without a start: kept while its pid lives.
      const unnamed = `${dir}/rws-${stranger.pid}-Ghi789`;
      mkdirSync(unnamed, { mode: 0o700 });
      utimesSync(unnamed, twoHoursAgo, twoHoursAgo);
      const next = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
      expect(next.exitCode).toBe(0);
      expect(next.stderr).toContain('removed 1 leftover secrets directory');
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(current)).toBe(true);
      expect(existsSync(unnamed)).toBe(true);
    } finally {
      stranger.kill('SIGKILL');
      await stranger;
    }
  });

  it('names its directory by its pid and its start, so that a later sweep can tell it from a reused pid', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'file', '--', fixture('trap.mjs'), 'SIGTERM'], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number; dir: string; file: string };
    try {
      expect(basename(ready.dir)).toBe(`rws-${child.pid}-${processStartTicks(child.pid!)}-${basename(ready.dir).slice(-6)}`);
      const next = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
      expect(next.stderr).not.toContain('leftover');
      expect(existsSync(ready.file)).toBe(true);
    } finally {
      child.kill('SIGTERM');
      await child;
    }
  });

  it('the orphaned child of a wrapper killed with SIGKILL keeps its file until it is gone too', async () => {
    const envFile = writeEnvFile(dir, '.env', 'API_KEY=abc123\n');
    const child = runBin(['--env-file', envFile, '--inject-as', 'file', '--', fixture('trap.mjs')], { runtimeDir: dir });
    const ready = JSON.parse((await waitForLine(child.stdout!, 'ready ')).slice(6)) as { pid: number; dir: string; file: string };
    child.kill('SIGKILL');
    // The orphan holds the output pipe open: wait for the wrapper's pid, not for the pipes.
    await waitForExit(child.pid!);
    try {
      // The child lives on, orphaned, and may read its file again at any time.
      const next = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
      expect(next.exitCode).toBe(0);
      expect(next.stderr).not.toContain('leftover');
      expect(readFileSync(ready.file, 'utf8')).toContain('API_KEY=');
    } finally {
      process.kill(ready.pid, 'SIGKILL');
    }
    await child;
    await waitForExit(ready.pid);
    const after = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
    expect(after.stderr).toContain('removed 1 leftover secrets directory');
    expect(existsSync(ready.dir)).toBe(false);
  });

  // A mount namespace of its own (root, CAP_SYS_ADMIN) is how a test can make /dev/shm read-only.
  const canUnshare = ((): boolean => {
    try {
      execFileSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro tmpfs /dev/shm'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!canUnshare)('a /dev/shm that cannot be written is passed over for the temp dir, with the warning', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'rws-ro-shm-'));
    try {
      const envFile = writeEnvFile(tmp, '.env', 'A=1\n');
      const script = `mount -t tmpfs -o ro tmpfs /dev/shm && exec "$0" --env-file "$1" --inject-as file -- sh -c 'echo "$SECRETS_FILE"; cat "$SECRETS_FILE"'`;
      const result = await execa('unshare', ['-m', 'sh', '-c', script, BIN, envFile], { reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', TMPDIR: tmp } });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`^${tmp}/rws-\\d+-\\d+-\\w{6}/secrets.env\nA='1'$`));
      expect(result.stderr).toContain('RWS_NOT_RAM_BACKED');
      expect(wrapperDirs(tmp)).toEqual([]);
    } finally {
      removeDir(tmp);
    }
  });

  it('falls back to the temp dir with a warning when no RAM-backed place is usable', async () => {
    // A real run cannot hide /dev/shm, so check the message path through a non-tmpfs XDG_RUNTIME_DIR
    // only when /dev/shm is missing; otherwise the file must land on /dev/shm or the runtime dir.
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const result = await execa(BIN, ['--env-file', envFile, '--inject-as', 'file', '--', 'sh', '-c', 'echo "$SECRETS_FILE"'], { reject: false, extendEnv: false, env: baseEnv(dir) });
    const path = result.stdout.trim();
    if (existsSync('/dev/shm')) expect(path.startsWith(dir) || path.startsWith('/dev/shm/')).toBe(true);
    else expect(result.stderr).toContain('RWS_NOT_RAM_BACKED');
  });
});
