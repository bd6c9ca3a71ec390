// When a process started, from /proc: its start in clock ticks after boot (proc_pid_stat(5),
// field 22) and the boot time (btime in /proc/stat, whole seconds). Ticks are USER_HZ, 100 on
// every architecture Linux runs on today, whatever the kernel's own HZ.
import { readFileSync } from 'node:fs';

const USER_HZ = 100;

/** Milliseconds since the epoch, to within a second; undefined when /proc cannot say. */
export function processStartMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields are counted after the command name's closing parenthesis: state is field 3.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(btime)) return undefined;
    return btime * 1000 + (ticks * 1000) / USER_HZ;
  } catch {
    return undefined;
  }
}
