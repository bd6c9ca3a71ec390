// --watch and its flags, validated once. Loaded only when --watch (or one of its flags) is given,
// so a plain run never pays for it. Every flag value is outside input: durations, signal names
// and the --on-change grammar are read strictly, and a refusal says what was expected and what
// was received.
import { constants } from 'node:os';
import { UsageError } from '../errors.js';

export type OnChange = { kind: 'restart' } | { kind: 'signal'; signal: NodeJS.Signals } | { kind: 'exit' };

export interface WatchSettings {
  intervalMs: number;
  debounceMs: number;
  maxWaitMs: number;
  onChange: OnChange;
  stopSignal: NodeJS.Signals;
  stopTimeoutMs: number;
  onRevoke: 'exit' | 'keep';
}

/** The flags that only mean something with --watch. */
export const WATCH_FLAGS = ['watch-interval', 'debounce', 'max-wait', 'on-change', 'stop-signal', 'stop-timeout', 'on-revoke'] as const;

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: HOUR_MS };
/** A reload signal must not kill or stop the child outright. */
const NOT_A_RELOAD = new Set<string>(['SIGKILL', 'SIGSTOP']);
/** Not signals one sends to stop a program: the kernel's own, or ones libuv cannot deliver. */
const NOT_A_STOP = new Set<string>(['SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGCONT', 'SIGCHLD', 'SIGWINCH', 'SIGURG']);

type Values = Record<string, string | boolean | string[] | undefined>;

export function resolveWatchSettings(values: Values, injectAs: 'env' | 'file' | 'fd'): WatchSettings {
  const intervalMs = duration('--watch-interval', text(values['watch-interval']) ?? '30s', 1000, DAY_MS);
  const debounceMs = duration('--debounce', text(values.debounce) ?? '2s', 0, HOUR_MS);
  const maxWaitMs = duration('--max-wait', text(values['max-wait']) ?? '30s', 0, DAY_MS);
  if (maxWaitMs < debounceMs) {
    throw new UsageError(`--max-wait (${text(values['max-wait']) ?? '30s'}) must not be shorter than --debounce (${text(values.debounce) ?? '2s'})`, 'the maximum wait caps the debounce: give it at least the debounce');
  }
  const onChange = parseOnChange(text(values['on-change']) ?? 'restart');
  if (onChange.kind === 'signal' && injectAs === 'env') {
    throw new UsageError(
      `--on-change signal:${onChange.signal.slice(3)} needs --inject-as file or fd: a running process's environment cannot change`,
      'add --inject-as file (the child rereads $SECRETS_FILE on the signal), or use --on-change restart',
    );
  }
  const stopSignal = signalName('--stop-signal', text(values['stop-signal']) ?? 'SIGTERM');
  if (NOT_A_STOP.has(stopSignal)) throw new UsageError(`--stop-signal ${stopSignal} does not stop a program`, 'use SIGTERM (the default), SIGINT, SIGQUIT, SIGHUP or SIGKILL');
  const stopTimeoutMs = duration('--stop-timeout', text(values['stop-timeout']) ?? '10s', 0, HOUR_MS);
  const onRevoke = text(values['on-revoke']) ?? 'exit';
  if (onRevoke !== 'exit' && onRevoke !== 'keep') throw new UsageError(`--on-revoke must be exit or keep, got ${quote(onRevoke)}`);
  return { intervalMs, debounceMs, maxWaitMs, onChange, stopSignal, stopTimeoutMs, onRevoke };
}

/** The watch flags given without --watch: named, so that a typo does not pass for a watch. */
export function strayWatchFlags(values: Values): string[] {
  return WATCH_FLAGS.filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
}

/**
 * `500ms`, `2s`, `1.5m`, `1h`, or a bare number of seconds; `0` only where the range allows it.
 * No exponents, signs or spaces: `1e99s`, `-1s` and ` 2s` are refused, not read as something.
 */
export function duration(flag: string, value: string, minMs: number, maxMs: number): number {
  const match = /^(\d{1,9})(\.\d{1,3})?(ms|s|m|h)?$/.exec(value);
  const range = `from ${describeMs(minMs)} to ${describeMs(maxMs)}`;
  if (!match) throw new UsageError(`${flag} expects a duration such as 500ms, 2s, 1m or 1h (${range}), got ${quote(value)}`);
  const unit = UNIT_MS[match[3] ?? 's']!;
  const ms = Math.round(Number(`${match[1]}${match[2] ?? ''}`) * unit);
  if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) throw new UsageError(`${flag} must be ${range}, got ${quote(value)}`);
  return ms;
}

export function parseOnChange(value: string): OnChange {
  if (value === 'restart' || value === 'exit') return { kind: value };
  if (value.startsWith('signal:')) {
    const signal = signalName('--on-change signal:', value.slice('signal:'.length));
    if (NOT_A_RELOAD.has(signal)) throw new UsageError(`--on-change signal:${signal.slice(3)} cannot ask a program to reload: it cannot be caught`, 'use a signal the program handles, such as signal:SIGHUP or signal:SIGUSR1');
    return { kind: 'signal', signal };
  }
  throw new UsageError(`--on-change must be restart, signal:SIG (e.g. signal:SIGHUP) or exit, got ${quote(value)}`);
}

/** `SIGHUP` or `HUP` (case-insensitive), as kill(1) takes them; numbers are refused (they differ between systems). */
export function signalName(flag: string, value: string): NodeJS.Signals {
  const upper = value.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!/^SIG[A-Z0-9]{1,10}$/.test(name) || !Object.hasOwn(constants.signals, name)) {
    throw new UsageError(`${flag} expects a signal name such as SIGHUP or SIGTERM, got ${quote(value)}`);
  }
  return name as NodeJS.Signals;
}

export function describeMs(ms: number): string {
  if (ms === 0) return '0';
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

function text(value: Values[string]): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}
