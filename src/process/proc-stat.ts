// One line of /proc/PID/stat (proc_pid_stat(5)), read for the few fields the wrapper and the
// server use. The command name (comm) comes second, in parentheses, as the process chose it
// (prctl PR_SET_NAME, process.title, the name of the file it runs): up to 15 bytes that may hold
// spaces, parentheses and newlines, written raw. Every later field is a number, so the name
// ends at the last ')'. Shared by the wrapper and the server: it imports nothing.

/** The fields callers use, named as proc_pid_stat(5) names them. */
export interface ProcStat {
  /** One letter: R running, S sleeping, D disk wait, T stopped, t traced, Z zombie, X dead... */
  state: string;
  ppid: number;
  pgrp: number;
  /** The foreground group of the controlling terminal; -1 without one. */
  tpgid: number;
  /** Clock ticks after boot, kept as written: it names a process (with its pid), never a duration. */
  starttime: string;
}

// After the name: state ppid pgrp session tty_nr tpgid, then flags minflt cminflt majflt
// cmajflt utime stime cutime cstime priority nice num_threads itrealvalue (13, some signed),
// then starttime (field 22). Later fields vary with the kernel's version and are not read.
const AFTER_COMM = /^ ([A-Za-z]) (-?\d+) (-?\d+) -?\d+ -?\d+ (-?\d+)(?: -?\d+){13} (\d+)(?:[ \n]|$)/;

/** The fields of one stat line; undefined for a line that is not one (truncated, garbage). */
export function parseProcStat(line: string): ProcStat | undefined {
  if (!/^\d+ \(/.test(line)) return undefined;
  const fields = AFTER_COMM.exec(line.slice(line.lastIndexOf(')') + 1));
  if (fields === null) return undefined;
  const [, state, ppid, pgrp, tpgid, starttime] = fields as unknown as [string, string, string, string, string, string];
  return { state, ppid: Number(ppid), pgrp: Number(pgrp), tpgid: Number(tpgid), starttime };
}
