// Runs the built bin as users do (directly, through its shebang) in a controlled environment.
import { execa, type ResultPromise } from 'execa';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(ROOT, 'bin/run-with-secrets.js');
export const FIXTURES = join(ROOT, 'test/fixtures/bin');
export const fixture = (name: string): string => join(FIXTURES, name);

/** A private, RAM-backed (when possible) directory used as XDG_RUNTIME_DIR and TMPDIR. */
export function makeRuntimeDir(): string {
  let base = tmpdir();
  try {
    const fs = statfsSync('/dev/shm');
    if (fs.type === 0x01021994) base = '/dev/shm';
  } catch {
    // no /dev/shm: the temp dir will do
  }
  const dir = mkdtempSync(join(base, 'rws-test-'));
  chmodSync(dir, 0o700);
  return dir;
}

/**
 * A directory others can pass through (0755 under the system temp dir): a 644 file in it really
 * is readable by other users, unlike one in the private runtime dir.
 */
export function makeSharedDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rws-shared-'));
  chmodSync(dir, 0o755);
  return dir;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Entries the wrapper created (rws-PID-XXXXXX) in a runtime dir. */
export function wrapperDirs(runtimeDir: string): string[] {
  return readdirSync(runtimeDir).filter((entry) => /^rws-\d+-/.test(entry));
}

export function writeEnvFile(dir: string, name: string, content: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

export interface RunOptions {
  env?: Record<string, string>;
  runtimeDir: string;
  input?: string;
}

/** The parent environment of every test run: small and known, plus what the test adds. */
export function baseEnv(runtimeDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8',
    XDG_RUNTIME_DIR: runtimeDir,
    TMPDIR: runtimeDir,
    ...extra,
  };
}

export function runBin(args: readonly string[], options: RunOptions): ResultPromise<{ reject: false; extendEnv: false; env: Record<string, string>; stdin: 'pipe' | 'ignore' }> {
  return execa(BIN, [...args], {
    reject: false,
    extendEnv: false,
    env: baseEnv(options.runtimeDir, options.env),
    stdin: options.input === undefined ? 'ignore' : 'pipe',
    ...(options.input === undefined ? {} : { input: options.input }),
  }) as never;
}

/** Waits until the child's stdout has produced a line starting with `prefix`; returns that line. */
export function waitForLine(stream: NodeJS.ReadableStream, prefix: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${prefix}"; got: ${buffer}`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffer += chunk.toString();
      const line = buffer.split('\n').find((candidate) => candidate.startsWith(prefix));
      if (line !== undefined) {
        clearTimeout(timer);
        stream.removeListener('data', onData);
        resolvePromise(line);
      }
    };
    stream.on('data', onData);
  });
}
