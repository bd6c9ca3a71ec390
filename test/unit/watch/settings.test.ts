import { describe, expect, it } from 'vitest';
import { duration, parseOnChange, resolveWatchSettings, signalName, strayWatchFlags } from '../../../src/watch/settings.js';

describe('watch settings', () => {
  it('defaults to the issue: 30s, 2s, 30s, restart, SIGTERM, 10s, exit', () => {
    expect(resolveWatchSettings({ watch: true }, 'env')).toEqual({
      intervalMs: 30_000,
      debounceMs: 2000,
      maxWaitMs: 30_000,
      onChange: { kind: 'restart' },
      stopSignal: 'SIGTERM',
      stopTimeoutMs: 10_000,
      onRevoke: 'exit',
    });
  });

  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['2', 2000],
    ['1.5s', 1500],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['0', 0],
    ['0.25', 250],
  ])('reads the duration %s', (text, ms) => {
    expect(duration('--x', text, 0, 86_400_000)).toBe(ms);
  });

  it.each(['-1s', '1e99s', '1e3', 'Infinity', 'NaN', '', ' 2s', '2s ', '2 s', '0x10', '1.2345s', '2sec', '+2s', '2S', '1_000', '９s', '1234567890s', '.5s'])('refuses the duration %j', (text) => {
    expect(() => duration('--x', text, 0, 86_400_000)).toThrow(/--x expects a duration such as 500ms, 2s, 1m or 1h/);
  });

  it('keeps durations in range and says which', () => {
    expect(() => duration('--watch-interval', '0', 1000, 86_400_000)).toThrow('--watch-interval must be from 1s to 24h, got "0"');
    expect(() => duration('--debounce', '25h', 0, 3_600_000)).toThrow('--debounce must be from 0 to 1h, got "25h"');
    expect(() => resolveWatchSettings({ watch: true, debounce: '5s', 'max-wait': '1s' }, 'env')).toThrow('--max-wait (1s) must not be shorter than --debounce (5s)');
  });

  it('reads signal names as kill(1) does, and nothing else', () => {
    expect(signalName('--s', 'SIGHUP')).toBe('SIGHUP');
    expect(signalName('--s', 'hup')).toBe('SIGHUP');
    expect(signalName('--s', 'usr1')).toBe('SIGUSR1');
    for (const bad of ['1', '9', 'SIGFOO', 'SIG', '', 'HUP ', 'constructor', '__proto__', 'SIGHUP;rm', 'toString']) {
      expect(() => signalName('--s', bad), bad).toThrow(/--s expects a signal name such as SIGHUP or SIGTERM/);
    }
  });

  it('reads --on-change strictly', () => {
    expect(parseOnChange('restart')).toEqual({ kind: 'restart' });
    expect(parseOnChange('exit')).toEqual({ kind: 'exit' });
    expect(parseOnChange('signal:SIGUSR2')).toEqual({ kind: 'signal', signal: 'SIGUSR2' });
    expect(parseOnChange('signal:hup')).toEqual({ kind: 'signal', signal: 'SIGHUP' });
    for (const bad of ['Restart', 'signal', 'signal:', 'signal:SIGKILL', 'signal:STOP', 'signal:SIGHUP:x', 'sig:HUP', ' restart']) expect(() => parseOnChange(bad), bad).toThrow();
  });

  it('refuses a reload signal with env injection, and says why', () => {
    expect(() => resolveWatchSettings({ watch: true, 'on-change': 'signal:SIGHUP' }, 'env')).toThrow("--on-change signal:HUP needs --inject-as file or fd: a running process's environment cannot change");
    expect(resolveWatchSettings({ watch: true, 'on-change': 'signal:SIGHUP' }, 'fd').onChange).toEqual({ kind: 'signal', signal: 'SIGHUP' });
  });

  it('refuses stop signals that do not stop, and bad --on-revoke values', () => {
    expect(() => resolveWatchSettings({ watch: true, 'stop-signal': 'SIGCONT' }, 'env')).toThrow('does not stop a program');
    expect(resolveWatchSettings({ watch: true, 'stop-signal': 'KILL' }, 'env').stopSignal).toBe('SIGKILL');
    expect(() => resolveWatchSettings({ watch: true, 'on-revoke': 'Exit' }, 'env')).toThrow('--on-revoke must be exit or keep, got "Exit"');
  });

  it('names watch flags given without --watch', () => {
    expect(strayWatchFlags({ debounce: '1s', 'on-change': 'exit', verbose: true })).toEqual(['--debounce', '--on-change']);
  });
});
