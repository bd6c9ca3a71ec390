// Who holds a file's POSIX locks, as Linux's /proc/locks lists them: the processes an edit that
// waited out SQLite's write lock can name, with whether each is stopped (SIGSTOP, a debugger, a
// paused container), which is the likeliest reason an edit holds the lock for seconds. Only a
// process's id, its short name (comm) and its state are read: never its command line, which may
// hold anything. Best effort: elsewhere than Linux, or when /proc says nothing, no one is named.
// Read synchronously: procfs answers from the kernel's memory, never a disk, and the audit log's
// lock (audit/audit-log-lock.ts) is taken again on the synchronous path of a write.
import { readFileSync, statSync } from 'node:fs';
import { parseProcStat } from '../../../process/proc-stat.js';

export interface LockHolder {
  /** 0 when the holder is in a PID namespace this process cannot see (another container). */
  pid: number;
  name?: string;
  stopped?: boolean;
}

/** Linux's dev_t as /proc/locks prints it: `major:minor` in hex. */
function deviceId(dev: number): string {
  const major = ((dev >>> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >>> 12) & ~0xff & 0xfffff);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

export function lockHolders(file: string, self: number = process.pid): LockHolder[] {
  try {
    const { dev, ino } = statSync(file);
    const device = `${deviceId(dev)}:${ino}`;
    const pids = new Set<number>();
    // A line: `1: POSIX  ADVISORY  WRITE 1234 08:01:5678 1073741824 1073742335`.
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      const at = fields.indexOf(device);
      if (at < 1) continue;
      const pid = Number(fields[at - 1]);
      if (Number.isInteger(pid) && pid !== self) pids.add(Math.max(pid, 0));
    }
    return [...pids].map(describe);
  } catch {
    return [];
  }
}

function describe(pid: number): LockHolder {
  if (pid === 0) return { pid };
  try {
    const name = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    const state = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.state;
    return { pid, name: printableName(name), stopped: state === 'T' || state === 't' };
  } catch {
    return { pid };
  }
}

/** A process names itself: kept to plain characters, and short. */
function printableName(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '?').slice(0, 32);
}

/**
 * "process 1234 (node, stopped)", "a process in another PID namespace", or undefined for none found.
 * `sharing`: what a container that holds it shares with this one, as its words say it.
 */
export function describeHolders(holders: readonly LockHolder[], sharing = 'on this store'): string | undefined {
  if (holders.length === 0) return undefined;
  return holders
    .map((holder) => {
      if (holder.pid === 0) return `a process in another PID namespace (another container ${sharing})`;
      const details = [holder.name, holder.stopped ? 'stopped' : undefined].filter((part) => part !== undefined);
      return `process ${holder.pid}${details.length > 0 ? ` (${details.join(', ')})` : ''}`;
    })
    .join(' and ');
}
