// When a process started, as /proc says it: clock ticks after boot (proc_pid_stat(5), field 22).
// The number is fixed for the life of the process and no later process of the same pid has it
// (until a reboot), whatever the wall clock does: a pid and its start name one process.
import { readFileSync } from 'node:fs';
import { parseProcStat } from './proc-stat.js';

/** The start, in clock ticks after boot, as /proc writes it; undefined when /proc cannot say. */
export function processStartTicks(pid: number | 'self'): string | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.starttime;
  } catch {
    return undefined;
  }
}
