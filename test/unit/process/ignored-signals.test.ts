// The SigIgn mask the launcher hands over, and the lookup that keeps our own 126/127 errors when
// the child is started through sh.
import { describe, expect, it } from 'vitest';
import { commandIgnoring, lookupFailure, parseSigIgnMask } from '../../../src/process/ignored-signals.js';
import { fixture } from '../../helpers/cli.js';

describe('parseSigIgnMask', () => {
  it('reads the bits of /proc/PID/status SigIgn: bit N-1 is signal N', () => {
    expect(parseSigIgnMask('0000000000000001')).toEqual(['SIGHUP']);
    expect(parseSigIgnMask('0000000000000006').sort()).toEqual(['SIGINT', 'SIGQUIT']);
    expect(parseSigIgnMask('0000000000000000')).toEqual([]);
  });

  it.each([undefined, '', 'zz', '1 2', '0x1', '-1', '1'.repeat(17), '0000000000000001\n'])('gives nothing for %j', (mask) => {
    expect(parseSigIgnMask(mask)).toEqual([]);
  });

  it('never lists SIGKILL or SIGSTOP, which cannot be ignored', () => {
    expect(parseSigIgnMask('ffffffffffffffff')).not.toContain('SIGKILL');
    expect(parseSigIgnMask('ffffffffffffffff')).not.toContain('SIGSTOP');
  });
});

describe('commandIgnoring', () => {
  it('passes the command and its arguments as sh positional parameters, never in the script', () => {
    const argv = commandIgnoring(['SIGHUP'], 'app', ['$(id)', "it's"]);
    expect(argv).toEqual({ command: '/bin/sh', args: ['-c', `trap '' 1 && exec "$0" "$@"`, 'app', '$(id)', "it's"] });
  });
});

describe('lookupFailure', () => {
  it('finds commands on PATH and by path, as execvp would', () => {
    expect(lookupFailure('sh', '/usr/bin:/bin')).toBeUndefined();
    expect(lookupFailure('no-such-command-rws', '/usr/bin:/bin')).toBe('ENOENT');
    expect(lookupFailure(fixture('not-executable.sh'), '/usr/bin')).toBe('EACCES');
    expect(lookupFailure('/', '/usr/bin')).toBe('EACCES');
    expect(lookupFailure('sh', undefined)).toBeUndefined();
  });
});
