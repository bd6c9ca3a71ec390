// Signal relay between the wrapper and its child. See shared/SECURITY.md §Signals: on a terminal
// the terminal delivers Ctrl-C, Ctrl-\ and resizes to the whole foreground group already, so
// forwarding them again would deliver them twice.
import type { ChildProcess } from 'node:child_process';

const ALWAYS_FORWARDED: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
const TERMINAL_DELIVERED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGQUIT', 'SIGWINCH'];
/**
 * The other signals whose default action ends a process. Uncaught, each would kill the wrapper
 * before its cleanup (the secrets file left for the next run's sweep, the child orphaned). Forwarded:
 * the wrapper ends as the child does; with no child yet they end the run, as they would have ended
 * the command. A real abort() of ours still kills us: libc restores SIGABRT's default and raises
 * it again. SIGIO is SIGPOLL too (29): one listener. Left alone, as the README's Signals section
 * says why: SIGKILL, SIGSTOP (cannot be caught); SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS
 * (raised by the faulting instruction, which runs again before a listener could: a hang); SIGPROF
 * (V8's profiler ticks); SIGPIPE, SIGXFSZ (Node ignores them: our own writes raise them);
 * real-time signals (Node has no name for them).
 */
export const FATAL_BY_DEFAULT: readonly NodeJS.Signals[] = ['SIGABRT', 'SIGALRM', 'SIGVTALRM', 'SIGXCPU', 'SIGIO', 'SIGPWR', 'SIGSTKFLT'];
/** Signals that ask the wrapper (and so the child) to stop. */
const STOP_SIGNALS = new Set<NodeJS.Signals>(['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);
/** Signals that end a run that has no child to pass them to. */
const ENDING_WITHOUT_CHILD = new Set<NodeJS.Signals>([...STOP_SIGNALS, ...FATAL_BY_DEFAULT]);
/** A second one of these while the child runs escalates to SIGKILL. */
const ESCALATING = new Set<NodeJS.Signals>(['SIGINT', 'SIGTERM']);

/**
 * Catches `signals` for the wrapper: each goes to `receive`, except one that was ignored when the
 * wrapper started, which is dropped (and said with -v). Returns the way to stop catching them.
 */
export function catchSignals(signals: readonly NodeJS.Signals[], ignored: ReadonlySet<NodeJS.Signals>, receive: (signal: NodeJS.Signals) => void, debug: (message: string) => void): () => void {
  const handlers = signals.map((signal): [NodeJS.Signals, () => void] => [signal, ignored.has(signal) ? () => debug(`${signal} ignored: it was ignored when run-with-secrets started`) : () => receive(signal)]);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  return () => {
    for (const [signal, handler] of handlers.splice(0)) process.removeListener(signal, handler);
  };
}

export interface RelayOptions {
  /** True when a terminal delivers SIGINT, SIGQUIT and SIGWINCH to the child already: they are not forwarded. */
  terminalDelivers: () => boolean;
  /** Signals ignored when the wrapper started: caught and dropped, never forwarded nor fatal. */
  ignored: ReadonlySet<NodeJS.Signals>;
  /** --kill-after: SIGKILL the child this long after a stop signal. */
  killAfterMs: number | undefined;
  /** A stop signal, or another that ends a run without a child, arrived before any child was started. */
  onStopBeforeChild(signal: NodeJS.Signals): void;
  debug(message: string): void;
}

export class SignalRelay {
  private child: ChildProcess | undefined;
  private escalations = 0;
  private killTimer: NodeJS.Timeout | undefined;
  private release: (() => void) | undefined;

  constructor(private readonly options: RelayOptions) {}

  /** Install before anything is created: from here on no signal can skip our cleanup. */
  install(): void {
    this.release = catchSignals([...ALWAYS_FORWARDED, ...FATAL_BY_DEFAULT, ...TERMINAL_DELIVERED], this.options.ignored, (signal) => this.receive(signal), this.options.debug);
  }

  uninstall(): void {
    this.release?.();
    this.release = undefined;
    this.detach();
  }

  attach(child: ChildProcess): void {
    this.child = child;
  }

  detach(): void {
    this.child = undefined;
    if (this.killTimer) clearTimeout(this.killTimer);
    this.killTimer = undefined;
  }

  private receive(signal: NodeJS.Signals): void {
    const child = this.child;
    if (!child) {
      if (ENDING_WITHOUT_CHILD.has(signal)) this.options.onStopBeforeChild(signal);
      return;
    }
    if (ESCALATING.has(signal) && ++this.escalations >= 2) {
      this.options.debug(`second ${signal}: killing the child with SIGKILL`);
      this.kill('SIGKILL');
      return;
    }
    if (!TERMINAL_DELIVERED.includes(signal) || !this.options.terminalDelivers()) {
      this.options.debug(`forwarding ${signal} to the child`);
      this.kill(signal);
    }
    if (STOP_SIGNALS.has(signal)) this.armKillTimer();
  }

  private armKillTimer(): void {
    if (this.options.killAfterMs === undefined || this.killTimer) return;
    this.killTimer = setTimeout(() => {
      this.options.debug('--kill-after expired: killing the child with SIGKILL');
      this.kill('SIGKILL');
    }, this.options.killAfterMs);
    this.killTimer.unref();
  }

  private kill(signal: NodeJS.Signals): void {
    try {
      this.child?.kill(signal);
    } catch {
      // The child is already gone; its exit is reported through the exit event.
    }
  }
}
