// Where a run's secrets file would go, and the sweep of what runs killed with SIGKILL left
// there. Run at every start, env mode included, so it uses synchronous calls (a few syscalls):
// node:fs/promises would cost each cron run ≈2 ms to load (bench/startup). The file itself is
// secrets-file.ts, loaded only for file and fd injection.
import { accessSync, constants as fsConstants, lstatSync, readdirSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { parseProcStat } from '../process/proc-stat.js';
import { processStartTicks } from '../process/start-time.js';

/**
 * The private directories' names: DIR_PREFIX, the wrapper's pid, a dash, its start in clock ticks
 * after boot and a dash (where /proc tells it; releases before this one wrote none), six
 * characters (mkdtemp). The pid alone cannot tell a wrapper from a later process given its number.
 */
export const DIR_PREFIX = 'rws-';
const LEFTOVER = /^rws-(\d+)-(?:(\d+)-)?[A-Za-z0-9]{6}$/;

/** The name's start of a directory this process makes: its pid and, where /proc tells it, its start. */
export function dirPrefix(): string {
  const started = processStartTicks('self');
  return `${DIR_PREFIX}${process.pid}-${started === undefined ? '' : `${started}-`}`;
}
// statfs f_type values of filesystems that live in memory (linux/magic.h).
const TMPFS_MAGIC = 0x01021994;
const RAMFS_MAGIC = 0x858458f6;

export interface Placement {
  base: string;
  ramBacked: boolean;
}

export interface PlacementOptions {
  xdgRuntimeDir: string | undefined;
  tmpDir: string;
  uid: number;
}

/** Where to put the private directory: $XDG_RUNTIME_DIR, /dev/shm, else the temp dir. */
export async function choosePlacement(options: PlacementOptions): Promise<Placement> {
  if (options.xdgRuntimeDir && (await isPrivateRamDir(options.xdgRuntimeDir, options.uid)) && isWritable(options.xdgRuntimeDir)) {
    return { base: options.xdgRuntimeDir, ramBacked: true };
  }
  // A /dev/shm we cannot write to (mounted read-only, or root's 0755 in a minimal container)
  // would fail every file-mode run: the temp dir, with its warning, is better than nothing.
  if ((await isRamFilesystem('/dev/shm')) && isWritable('/dev/shm')) return { base: '/dev/shm', ramBacked: true };
  return { base: options.tmpDir, ramBacked: await isRamFilesystem(options.tmpDir) };
}

async function isPrivateRamDir(path: string, uid: number): Promise<boolean> {
  try {
    const info = lstatSync(path);
    return info.isDirectory() && info.uid === uid && (info.mode & 0o077) === 0 && (await isRamFilesystem(path));
  } catch {
    return false;
  }
}

function isWritable(path: string): boolean {
  try {
    accessSync(path, fsConstants.W_OK | fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function isRamFilesystem(path: string): Promise<boolean> {
  try {
    const info = lstatSync(path);
    if (!info.isDirectory()) return false;
    const fs = statfsSync(path);
    return fs.type === TMPFS_MAGIC || fs.type === RAMFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Removes directories of our own earlier runs once no process of that run is alive: neither the
 * wrapper named in the directory nor a process that inherited the file's path (the child and its
 * descendants, orphaned when the wrapper was killed with SIGKILL, still read from it). Returns
 * how many.
 */
export async function removeLeftovers(base: string, uid: number, isAlive: (pid: number) => boolean, pathsInUse: () => Promise<Buffer> = environmentsOfLiveProcesses): Promise<number> {
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return 0;
  }
  const candidates = entries.filter((entry) => {
    const match = LEFTOVER.exec(entry);
    if (match === null || Number(match[1]) === process.pid) return false;
    return !isAlive(Number(match[1])) || pidReused(Number(match[1]), match[2]);
  });
  if (candidates.length === 0) return 0;
  const inUse = await pathsInUse();
  let removed = 0;
  for (const entry of candidates) {
    const path = join(base, entry);
    if (inUse.includes(`${path}/`)) continue;
    try {
      const info = lstatSync(path);
      if (!info.isDirectory() || info.uid !== uid) continue;
      rmSync(path, { recursive: true, force: true });
      removed++;
    } catch {
      // Raced with another wrapper cleaning the same leftover: nothing to do.
    }
  }
  return removed;
}

/**
 * The pid now names a process that started at another time than the wrapper that made the
 * directory: pids are reused, and a leftover of a wrapper killed hours ago kept its secrets on
 * disk for as long as some later process happened to hold that number. Told by the start in the
 * name, not by the directory's times, which a clock stepped forward would make look old. A name
 * without one (an earlier release's) is kept while its pid is alive, as before.
 */
function pidReused(pid: number, started: string | undefined): boolean {
  if (started === undefined) return false;
  const now = processStartTicks(pid);
  return now !== undefined && now !== started;
}

/**
 * The initial environments of every process we may read, joined: where a run's descendants carry
 * its secrets file path. Read only when a leftover is found, which is rare. Without /proc (not
 * Linux) nothing is known to be in use.
 */
export async function environmentsOfLiveProcesses(): Promise<Buffer> {
  const { readdir, readFile } = await import('node:fs/promises');
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return Buffer.alloc(0);
  }
  const environments = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/environ`).catch(() => Buffer.alloc(0))));
  return Buffer.concat(environments);
}

export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Alive and not a zombie: a process killed a moment ago answers kill(0) until its parent reaps
 * it (strace, a busy script, an init that never does), but will never act again.
 */
export function processIsRunning(pid: number): boolean {
  if (!processIsAlive(pid)) return false;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return true;
  }
  const state = parseProcStat(stat)?.state;
  return state !== 'Z' && state !== 'X';
}
