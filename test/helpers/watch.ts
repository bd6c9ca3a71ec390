// For the --watch tests: the wrapper started as users start it, the child's record (one JSON line
// per event, written by test/fixtures/watch/child.js), and waiting on it instead of sleeping.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProcStat } from '../../src/process/proc-stat.js';
import { BIN, baseEnv, ROOT } from './cli.js';

const SERVER_BIN = join(ROOT, 'bin/secrets-server.js');

export const WATCH_CHILD = join(ROOT, 'test/fixtures/watch/child.js');
/** The child as the issue asks for it: through a shell, which is then the group's leader. */
export const CHILD_COMMAND = ['sh', '-c', `node ${WATCH_CHILD}`];

export interface ChildEvent {
  event: string;
  pid: number;
  digest?: string;
  seen?: Record<string, string | undefined>;
  at?: number;
  code?: string;
}

export function readRecord(path: string): ChildEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as ChildEvent);
}

export const ups = (path: string): ChildEvent[] => readRecord(path).filter((event) => event.event === 'up');

export async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export type Wrapper = ResultPromise<{ reject: false; extendEnv: false; env: Record<string, string>; stdin: 'ignore'; all: false }> & { stderrText(): string };

/** The wrapper with --watch, its stderr collected as it comes (for "wait for the line"). */
export function startWatch(args: readonly string[], runtimeDir: string, env: Record<string, string>): Wrapper {
  const subprocess = execa(BIN, [...args], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, env), stdin: 'ignore' }) as unknown as Wrapper;
  let stderr = '';
  subprocess.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  subprocess.stderrText = () => stderr;
  return subprocess;
}

/** Whether `pid` still runs: a zombie (dead, not yet reaped by an init that may never reap it) does not. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const state = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.state;
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The process group of `pid`; NaN when its stat line cannot be read as one. */
export function processGroup(pid: number): number {
  return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.pgrp ?? Number.NaN;
}

/** A free TCP port on loopback (for a server that must come back on the same port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** secrets-server on a given port: stopped and started again, it must be found at the same URL. */
export async function startServerOn(storeDir: string, port: number): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(SERVER_BIN, ['serve', '--store', storeDir, '--port', String(port)], { env: { ...process.env, VANTA_SOPS_FILES_PATH: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /secrets-server listening on (\S+)\n/.exec(stdout);
      if (match?.[1]) resolve(match[1]);
    });
    void exited.then(() => reject(new Error(`server exited before it was ready: ${stderr}`)));
  });
  return {
    url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
