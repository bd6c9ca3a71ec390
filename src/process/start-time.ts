// When a process started, as /proc says it: clock ticks after boot (proc_pid_stat(5), field 22).
// The number is fixed for the life of the process and no later process of the same pid has it
// (until a reboot), whatever the wall clock does: a pid and its start name one process.
import { readFileSync } from 'node:fs';

/** The start, in clock ticks after boot, as /proc writes it; undefined when /proc cannot say. */
export function processStartTicks(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields are counted after the command name's closing parenthesis (a name may hold one):
    // state is field 3, so the start, field 22, is the 20th from there.
    const ticks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
