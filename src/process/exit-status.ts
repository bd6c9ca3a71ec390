// How the wrapper ends: with the child's exit code, or by the child's signal, so that a parent
// shell sees the same death the child had (shells stop loops on a child's SIGINT that way).
import { constants } from 'node:os';

export type Outcome = { kind: 'exit'; code: number } | { kind: 'signal'; signal: NodeJS.Signals };

/** Signals whose default action dumps core: re-raising would dump the wrapper's core too. */
const CORE_DUMPING = new Set<string>(['SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGXCPU', 'SIGXFSZ', 'SIGSYS']);

export function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}

/** The shell-style status for a signal death: 128 + N. */
export function statusForSignal(signal: NodeJS.Signals): number {
  return 128 + signalNumber(signal);
}

export function shouldReraise(signal: NodeJS.Signals): boolean {
  return !CORE_DUMPING.has(signal);
}

/**
 * Dies of `signal`. Node keeps its own dispositions for some signals (SIGPIPE ignored, SIGUSR1
 * starts the inspector); adding and removing a listener makes libuv restore the default action
 * first. If the signal does not kill us (it is ignored by default), exit with 128+N.
 */
export function dieBySignal(signal: NodeJS.Signals, exit: (code: number) => void): void {
  if (signal !== 'SIGKILL' && signal !== 'SIGSTOP') {
    process.removeAllListeners(signal);
    const noop = (): void => undefined;
    try {
      process.on(signal, noop);
      process.removeListener(signal, noop);
    } catch {
      // A signal libuv cannot watch: its disposition is already the default.
    }
  }
  try {
    process.kill(process.pid, signal);
  } catch {
    // Fall through to the exit status below.
  }
  setTimeout(() => exit(statusForSignal(signal)), 100).unref?.();
  // Keep the loop alive long enough for the timer, in case the signal is ignored by default.
  setTimeout(() => undefined, 150);
}
