// Signals to the wrapper during a watch go to the child's process group. The child has a session
// of its own, so a terminal's Ctrl-C reaches the wrapper only: it is forwarded even on a
// terminal, and so reaches the group exactly once. INT, TERM and QUIT also end the watch (no
// restart begins while the group stops); a second INT or TERM kills the group at once. A signal
// that was ignored when the wrapper started stays ignored (see the README's Signals section).
import { catchSignals, FATAL_BY_DEFAULT } from '../process/signals.js';
import { signalGroup } from './process-group.js';

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', ...FATAL_BY_DEFAULT];
/** They ask the wrapper, and so the child, to stop: the watch ends with the child. */
const ENDING = new Set<NodeJS.Signals>(['SIGINT', 'SIGTERM', 'SIGQUIT']);
/** With a child they are only forwarded (the watch ends if it dies of them); without one, they end the run. */
const ENDING_WITHOUT_CHILD = new Set<NodeJS.Signals>(['SIGHUP', ...FATAL_BY_DEFAULT]);
const ESCALATING = new Set<NodeJS.Signals>(['SIGINT', 'SIGTERM']);

export interface GroupSignalOptions {
  ignored: ReadonlySet<NodeJS.Signals>;
  /** A signal that ends the watch arrived (or HUP, ALRM, ... while no child runs). Called once. */
  onEnd(signal: NodeJS.Signals): void;
  /** A second INT or TERM after the end: nothing more is waited for (a revoke to a hung vault). */
  onAgain(signal: NodeJS.Signals): void;
  debug(message: string): void;
}

export class GroupSignals {
  private pgid: number | undefined;
  /** A group being stopped (its stop signal already sent): nothing is forwarded to it, but a second INT or TERM kills it. */
  private stopping: number | undefined;
  private ended: NodeJS.Signals | undefined;
  private release: (() => void) | undefined;

  constructor(private readonly options: GroupSignalOptions) {}

  /** Installed before anything is created: from here on no signal can skip our cleanup. */
  install(): void {
    this.release = catchSignals(FORWARDED, this.options.ignored, (signal) => this.receive(signal), this.options.debug);
  }

  uninstall(): void {
    this.release?.();
    this.release = undefined;
    this.pgid = undefined;
    this.stopping = undefined;
  }

  /** The group now running (undefined between a stop and the next start). */
  attach(pgid: number | undefined): void {
    this.pgid = pgid;
    this.stopping = undefined;
  }

  /**
   * The group is being stopped (a restart, a revocation, --on-change exit, the leader's exit):
   * signals are no longer forwarded to it, but the second INT or TERM still SIGKILLs it, as it
   * would a running child, instead of waiting out --stop-timeout.
   */
  detach(stopping: number): void {
    this.pgid = undefined;
    this.stopping = stopping;
  }

  /** The signal that ended the watch, if one did. */
  get endedBy(): NodeJS.Signals | undefined {
    return this.ended;
  }

  private receive(signal: NodeJS.Signals): void {
    const pgid = this.pgid;
    if (this.ended && ESCALATING.has(signal)) this.options.onAgain(signal);
    if (pgid !== undefined) {
      if (this.ended && ESCALATING.has(signal)) {
        this.options.debug(`second stop signal (${signal}): killing the child's process group with SIGKILL`);
        signalGroup(pgid, 'SIGKILL');
        return;
      }
      this.options.debug(`forwarding ${signal} to the child's process group`);
      signalGroup(pgid, signal);
    } else if (this.stopping !== undefined && this.ended && ESCALATING.has(signal)) {
      this.options.debug(`second stop signal (${signal}) while the child's process group stops: killing it with SIGKILL`);
      signalGroup(this.stopping, 'SIGKILL');
    }
    // Without a child (between a stop and the next start) a hangup, or a signal fatal by default, ends
    // the run, as before a first start.
    if (!this.ended && (ENDING.has(signal) || (ENDING_WITHOUT_CHILD.has(signal) && pgid === undefined))) {
      this.ended = signal;
      this.options.onEnd(signal);
    }
  }
}
