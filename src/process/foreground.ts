// Whether a terminal delivers Ctrl-C, Ctrl-\ and window resizes to the wrapper's process group,
// and so to the child in it: only when that group is the foreground group of the wrapper's
// controlling terminal. Whether stdin, stdout or stderr is a terminal says neither: a foreground
// run with its output sent to a file gets Ctrl-C from the terminal all the same (forwarded
// again, the child got it twice), and a run under setsid, or a background job, whose output is
// the terminal gets SIGINT only from a `kill` (not forwarded, the child never got it). Asked
// when the signal comes, since `fg` and `bg` move a job between the two.
import { readFileSync } from 'node:fs';
import { parseProcStat } from './proc-stat.js';

/** From /proc/self/stat: pgrp and tpgid (-1 without a controlling terminal); undefined without /proc. */
export function groupIsForeground(readStat: () => string = () => readFileSync('/proc/self/stat', 'latin1')): boolean | undefined {
  let stat: string;
  try {
    stat = readStat();
  } catch {
    return undefined;
  }
  const fields = parseProcStat(stat);
  if (fields === undefined) return undefined;
  return fields.tpgid === fields.pgrp;
}
