// Starts the child: inherited stdio (or pipes through the mask), an optional extra descriptor
// (the secrets file in fd mode), the wrapper's process group. node:child_process is used
// directly: the relay needs the raw ChildProcess, and execa costs ~100 ms of start-up that
// every cron run would pay.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Outcome } from './exit-status.js';
import { commandIgnoring, lookupFailure } from './ignored-signals.js';
import { missingInterpreter } from './interpreter.js';
import { relayOutput, type OutputFilters } from './output-relay.js';
import { spawnFailure } from './spawn-failure.js';

export interface ChildSpec {
  command: string;
  args: readonly string[];
  env: Record<string, string>;
  /** A descriptor to hand down as fd 3. */
  extraFd?: number | undefined;
  /** When set, stdout and stderr are piped through these (--mask) instead of inherited. */
  filters?: OutputFilters | undefined;
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
      const relayed = spec.filters ? relayOutput(child, spec.filters) : undefined;
      const done = new Promise<Outcome>((settle) => {
        child.once('exit', (code, signal) => {
          const outcome: Outcome = signal ? { kind: 'signal', signal } : { kind: 'exit', code: code ?? 0 };
          // Inherited output needs no relaying: done at once (a zero timer would cost the exit
          // a turn of the timers, ≥ 1 ms, on every run).
          if (!relayed) {
            settle(outcome);
            return;
          }
          void relayed.finish().then(() => settle(outcome));
        });
      });
      resolve({ child, done });
    });
  });
}
