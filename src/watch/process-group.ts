// The child of a watch runs in a process group of its own, and the group is the unit that is
// stopped: the stop signal goes to every member, then SIGKILL goes to every member, and a stop is
// over only when no member is left. envconsul#317 sent SIGKILL to `sh -c` alone and the app
// survived; envconsul#177 started the next child while the old one still held its port.
import { readdir, readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import type { Outcome } from '../process/exit-status.js';
import { parseProcStat } from '../process/proc-stat.js';
import type { RunningChild } from '../process/spawn.js';

const POLL_MS = 20;
/** After SIGKILL only zombies and processes stuck in the kernel remain; neither holds a port for long. */
const AFTER_KILL_MS = 5000;

export interface StopOptions {
  signal: NodeJS.Signals;
  timeoutMs: number;
  /** Says once that the timeout expired (names only). */
  note(message: string): void;
}

/**
 * The group's last resort when the wrapper itself ends abruptly (an internal error, process.exit
 * from a handler): registered with the run's Cleanup, it SIGKILLs the group from the synchronous
 * 'exit' path, so an app in its own session never runs on unsupervised with stale secrets. Only
 * while the leader is not yet reaped: until then its pid, and so the group id, cannot be reused
 * by an unrelated process. The normal ends stop the group themselves (dispose does nothing).
 */
export function killGroupOnExit(running: RunningChild): { dispose(): Promise<void>; disposeSync(): void } {
  return {
    dispose: async () => undefined,
    disposeSync: () => {
      const { child } = running;
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) signalGroup(child.pid, 'SIGKILL');
    },
  };
}

/** Sends `signal` to every process of the group; false when none is left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether a process of the group can still run. A zombie (exited, not yet reaped by its parent,
 * often init) still answers kill(0) but has closed its files and ports: it does not count.
 */
export async function groupAlive(pgid: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) return false;
  try {
    await readdir('/proc');
  } catch {
    return true;
  }
  return (await groupMembers(pgid)).length > 0;
}

/**
 * A reload signal for the group: sent to the members that catch it (SigCgt in /proc/PID/status),
 * so that `sh -c 'node app.js'` reloads the app instead of the shell dying of the signal's default
 * action and taking the run with it. When no member catches it, the leader gets it: whatever the
 * program does with it is then its own choice, and `caught` false lets the run say so (a child
 * that ignores it rereads nothing; one that takes the default action most likely ends).
 */
export async function signalCatchers(pgid: number, signal: NodeJS.Signals): Promise<{ pids: number[]; caught: boolean; ignored: boolean }> {
  const number = constants.signals[signal];
  const members = await groupMembers(pgid);
  const catching: number[] = [];
  let ignored = false;
  for (const pid of members) {
    const status = await readFile(`/proc/${pid}/status`, 'latin1').catch(() => '');
    if (hasSignal(status, 'SigCgt', number)) catching.push(pid);
    if (pid === pgid) ignored = hasSignal(status, 'SigIgn', number);
  }
  const targets = catching.length > 0 ? catching : [pgid];
  for (const pid of targets) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone meanwhile.
    }
  }
  // Without /proc nothing is known: the signal is taken as caught, as it was before it was read.
  return { pids: targets, caught: catching.length > 0 || members.length === 0, ignored };
}

/** Whether a signal mask line of /proc/PID/status (SigCgt, SigIgn: hex) holds signal `number`. */
function hasSignal(status: string, field: 'SigCgt' | 'SigIgn', number: number): boolean {
  const mask = new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1];
  return mask !== undefined && ((BigInt(`0x${mask}`) >> BigInt(number - 1)) & 1n) === 1n;
}

/** The live (not zombie) processes of a group, from /proc; empty without /proc. */
async function groupMembers(pgid: number): Promise<number[]> {
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return [];
  }
  const stats = await Promise.all(pids.map(async (pid) => [Number(pid), await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => '')] as const));
  return stats.filter(([, stat]) => isLiveMember(stat, pgid)).map(([pid]) => pid);
}

function isLiveMember(stat: string, pgid: number): boolean {
  const fields = parseProcStat(stat);
  return fields !== undefined && fields.pgrp === pgid && fields.state !== 'Z' && fields.state !== 'X';
}

/** Resolves true once the group is gone, false when `ms` passed first (or `cancelled` settled). */
export async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (;;) {
    if (!(await groupAlive(pgid))) return true;
    if (performance.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(1, deadline - performance.now()))));
  }
}

/**
 * Stops the whole group of `running` (whose pid is the group id): the stop signal, up to
 * `timeoutMs` for every member to go, then SIGKILL and the wait for the last of them. Resolves
 * with how the leader ended, once the group is gone (or only zombies and stuck processes remain).
 */
export async function stopGroup(running: RunningChild, options: StopOptions): Promise<Outcome> {
  const pgid = running.child.pid!;
  signalGroup(pgid, options.signal);
  await finishGroup(pgid, options, false);
  return running.done;
}

/**
 * The rest of a stop whose signal was already sent (the leader may be gone): waits up to the
 * timeout, then SIGKILLs what is left. `sendFirst` sends the stop signal to stragglers first.
 */
export async function finishGroup(pgid: number, options: StopOptions, sendFirst: boolean): Promise<void> {
  if (sendFirst && !signalGroup(pgid, options.signal)) return;
  if (await waitGroupGone(pgid, options.timeoutMs)) return;
  options.note(`the child's process group outlived ${options.signal} by ${options.timeoutMs / 1000}s: sending SIGKILL to the group`);
  signalGroup(pgid, 'SIGKILL');
  if (!(await waitGroupGone(pgid, AFTER_KILL_MS))) options.note(`processes of the child's group are still there ${AFTER_KILL_MS / 1000}s after SIGKILL (stuck in the kernel); going on`);
}
