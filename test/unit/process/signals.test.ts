// Which signals the wrapper catches, against signal(7)'s default actions: every signal that would
// end the wrapper is caught (and so cannot skip its cleanup), unless it cannot be or must not be;
// the README's Signals section gives each reason.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SignalRelay } from '../../../src/process/signals.js';
import { GroupSignals } from '../../../src/watch/group-signals.js';

/** Linux's signals whose default action is to end the process (Term or Core in signal(7)). */
const ENDS_A_PROCESS = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGIO', 'SIGPWR', 'SIGSYS'];
const LEFT_ALONE = [
  // Cannot be caught.
  'SIGKILL',
  // Raised by the instruction that faulted (or trapped, or made a syscall a seccomp filter refused):
  // it runs again before a listener could, a hang.
  'SIGSEGV',
  'SIGBUS',
  'SIGFPE',
  'SIGILL',
  'SIGTRAP',
  'SIGSYS',
  // V8's sampling profiler ticks.
  'SIGPROF',
  // Ignored by Node; raised by our own writes.
  'SIGPIPE',
  'SIGXFSZ',
];
/** Stopped, continued, or nothing at all by default. */
const HARMLESS = ['SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGWINCH'];
const ALIASES = new Set(['SIGIOT', 'SIGPOLL']);
const names = Object.keys(constants.signals).filter((name) => !ALIASES.has(name)) as NodeJS.Signals[];

/** The signals that `install` adds a listener for. */
function caughtBy(install: () => () => void): string[] {
  const before = new Map(names.map((name) => [name, process.listenerCount(name)]));
  const release = install();
  const caught = names.filter((name) => process.listenerCount(name) > before.get(name)!);
  release();
  return caught;
}

const quiet = { ignored: new Set<NodeJS.Signals>(), debug: () => undefined };

describe('the signals the wrapper catches', () => {
  it('every signal Node names is in the tables above: a new one needs a decision', () => {
    expect([...names].sort()).toEqual([...ENDS_A_PROCESS, ...HARMLESS].sort());
  });

  it('a run catches every signal that would end it, except those left alone', () => {
    const caught = caughtBy(() => {
      const relay = new SignalRelay({ ...quiet, terminalDelivers: () => false, killAfterMs: undefined, onStopBeforeChild: () => undefined });
      relay.install();
      return () => relay.uninstall();
    });
    expect(caught.filter((name) => ENDS_A_PROCESS.includes(name)).sort()).toEqual(ENDS_A_PROCESS.filter((name) => !LEFT_ALONE.includes(name)).sort());
  });

  it('a watch catches the same ones', () => {
    const caught = caughtBy(() => {
      const signals = new GroupSignals({ ...quiet, onEnd: () => undefined, onAgain: () => undefined });
      signals.install();
      return () => signals.uninstall();
    });
    expect(caught.filter((name) => ENDS_A_PROCESS.includes(name)).sort()).toEqual(ENDS_A_PROCESS.filter((name) => !LEFT_ALONE.includes(name)).sort());
  });
});
