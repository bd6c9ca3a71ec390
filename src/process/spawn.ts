// Starts the child: inherited stdio (or pipes through the mask), an optional extra descriptor
// (the secrets file in fd mode), the wrapper's process group. node:child_process is used
// directly: the relay needs the raw ChildProcess, and execa costs ~100 ms of start-up that
// every cron run would pay.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { Outcome } from './exit-status.js';
import { commandIgnoring, lookupFailure } from './ignored-signals.js';
import { missingInterpreter } from './interpreter.js';
import { spawnFailure } from './spawn-failure.js';

const DRAIN_GRACE_MS = 1000;
const WRITE_FAILED_ONLY = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);

export interface ChildSpec {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  /** A descriptor to hand down as fd 3. */
  extraFd?: number | undefined;
  /** When set, stdout and stderr are piped through these (--mask) instead of inherited. */
  filters?: { stdout: NodeJS.ReadWriteStream; stderr: NodeJS.ReadWriteStream; out: Writable; err: Writable } | undefined;
  /** Signals the child must start with ignored (they were ignored when the wrapper started). */
  ignoredSignals?: readonly NodeJS.Signals[] | undefined;
  /** --user: run as this uid/gid (libuv also drops the supplementary groups). */
  user?: { uid: number; gid: number } | undefined;
  /** --watch: a session and process group of its own (setsid), so a stop reaches every descendant. */
  ownGroup?: boolean | undefined;
}

export interface RunningChild {
  child: ChildProcess;
  /** Settles when the child has exited and its piped output (if any) has drained. */
  done: Promise<Outcome>;
}

/** Resolves once the child runs; rejects with a SpawnError when it cannot be started. */
export function startChild(spec: ChildSpec): Promise<RunningChild> {
  const output = spec.filters ? 'pipe' : 'inherit';
  const stdio: StdioOptions = ['inherit', output, output];
  if (spec.extraFd !== undefined) stdio.push(spec.extraFd);
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    let argv: { command: string; args: string[] } = { command: spec.command, args: [...spec.args] };
    if (spec.ignoredSignals && spec.ignoredSignals.length > 0) {
      // sh would exec the command and print its own message: the failures exec would meet are
      // found first, so that they are reported as without sh in between.
      const failure = lookupFailure(spec.command, spec.env.PATH) ?? (missingInterpreter(spec.command, spec.env.PATH) === undefined ? undefined : 'ENOENT');
      if (failure) {
        reject(spawnFailure(spec.command, Object.assign(new Error(failure), { code: failure }), spec.env.PATH));
        return;
      }
      argv = commandIgnoring(spec.ignoredSignals, spec.command, spec.args);
    }
    try {
      child = spawn(argv.command, argv.args, { stdio, env: spec.env, windowsHide: true, detached: spec.ownGroup === true, ...(spec.user ? { uid: spec.user.uid, gid: spec.user.gid } : {}) });
    } catch (error) {
      reject(spawnFailure(spec.command, error, spec.env.PATH));
      return;
    }
    child.once('error', (error) => reject(spawnFailure(spec.command, error, spec.env.PATH)));
    child.once('spawn', () => {
      const drained = spec.filters ? pipeOutput(child, spec.filters) : undefined;
      const done = new Promise<Outcome>((settle) => {
        child.once('exit', (code, signal) => {
          const outcome: Outcome = signal ? { kind: 'signal', signal } : { kind: 'exit', code: code ?? 0 };
          // Inherited output needs no relaying: done at once (a zero timer would cost the exit
          // a turn of the timers, ≥ 1 ms, on every run).
          if (!spec.filters) {
            settle(outcome);
            return;
          }
          // A grandchild left running may hold the pipes open forever: give the output a moment
          // to drain, then stop relaying it rather than outlive the child.
          let timer: NodeJS.Timeout | undefined;
          const grace = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, DRAIN_GRACE_MS);
          });
          void Promise.race([drained, grace]).then(() => {
            clearTimeout(timer);
            child.stdout?.destroy();
            child.stderr?.destroy();
            settle(outcome);
          });
        });
      });
      resolve({ child, done });
    });
  });
}

function pipeOutput(child: ChildProcess, filters: NonNullable<ChildSpec['filters']>): Promise<void> {
  const ends = [
    relay(child.stdout!, filters.stdout, filters.out, child),
    relay(child.stderr!, filters.stderr, filters.err, child),
  ];
  return Promise.all(ends).then(() => undefined);
}

function relay(source: NodeJS.ReadableStream & { destroy(): void }, filter: NodeJS.ReadWriteStream, target: Writable, child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    let readerGone = false;
    // Our reader went away (`... --mask -- yes | head -1`). Without --mask the child's next write
    // would get SIGPIPE (and EPIPE): give it the same. Our end of the pipe is a socket, whose
    // close alone would answer ECONNRESET, so the signal is sent first.
    // A full disk (or quota, or size limit) fails that write only, as it would the child's own
    // write without --mask: the child runs on and later output goes through once there is room.
    const onTargetError = (error: NodeJS.ErrnoException): void => {
      if (WRITE_FAILED_ONLY.has(error.code ?? '')) return;
      readerGone = true;
      // Held for a drain that will never come: let the child's output flow to the SIGPIPE below.
      filter.resume();
      done();
    };
    // A reader slower than the child (`--mask -- pg_dump | gzip`, a busy `logger`) holds the
    // child as it would without --mask, its writes blocking on a full pipe: without this, every
    // byte it wrote waited in the wrapper's memory (gigabytes in seconds for `yes`).
    const onDrain = (): void => {
      filter.resume();
    };
    // The target is the wrapper's own stdout or stderr, which outlives the child: under --watch a
    // listener left on it per child kept every child, its pipes and its values (the mask's
    // needles) for the life of the wrapper, and Node warned of a leak after ten.
    const done = (): void => {
      target.off('error', onTargetError);
      target.off('drain', onDrain);
      resolve();
    };
    source.pipe(filter);
    // Do not end our own stdout/stderr: the wrapper may still log after the child is done.
    filter.on('data', (chunk: Buffer) => {
      if (readerGone) return;
      // A write that failed (a full disk) also answers false, with no drain to follow.
      if (!target.write(chunk) && target.writableNeedDrain) filter.pause();
    });
    filter.once('end', done);
    filter.once('error', done);
    target.on('error', onTargetError);
    target.on('drain', onDrain);
    source.on('data', () => {
      if (!readerGone) return;
      source.unpipe(filter);
      try {
        child.kill('SIGPIPE');
      } catch {
        // Already gone.
      }
      source.destroy();
    });
  });
}
