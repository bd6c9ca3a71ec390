import { describe, expect, it } from 'vitest';
import { groupIsForeground } from '../../../src/process/foreground.js';

// proc_pid_stat(5): pid (comm) state ppid pgrp session tty_nr tpgid ... starttime (field 22) ...
const stat = (comm: string, pgrp: number, tpgid: number): string =>
  `4242 (${comm}) S 1 ${pgrp} ${pgrp} 34816 ${tpgid} 4194560 2185 0 0 0 2 1 0 0 20 0 7 0 123456789 1085566976 11707\n`;

describe('groupIsForeground', () => {
  it('is true when our group is the terminal\'s foreground group', () => {
    expect(groupIsForeground(() => stat('node', 4242, 4242))).toBe(true);
  });

  it('is false for a background group, and without a controlling terminal (tpgid -1)', () => {
    expect(groupIsForeground(() => stat('node', 4242, 5000))).toBe(false);
    expect(groupIsForeground(() => stat('node', 4242, -1))).toBe(false);
  });

  it('counts fields after the last parenthesis: a command name may hold spaces and parentheses', () => {
    expect(groupIsForeground(() => stat('a) S 1 7 7 0 7 (b', 4242, 4242))).toBe(true);
    expect(groupIsForeground(() => stat('a) S 1 7 7 0 7 (b', 4242, 1))).toBe(false);
  });

  it('is undefined when /proc cannot tell', () => {
    expect(groupIsForeground(() => { throw new Error('ENOENT'); })).toBeUndefined();
    expect(groupIsForeground(() => 'garbage')).toBeUndefined();
  });
});
