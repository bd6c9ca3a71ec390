// What an environment can hold: Linux refuses an execve (E2BIG) whose `NAME=value` string (with
// its NUL) is over MAX_ARG_STRLEN, 32 pages: 128 KiB with 4 KiB pages, or whose strings together
// are over a quarter of the stack limit. A run finds out at the spawn, before any child ran; a
// watch's restart would find out after it had stopped the running child, so it asks first.
import { readFileSync } from 'node:fs';
import { SpawnError, EXIT_WRAPPER_FAILURE } from '../errors.js';

/** Secrets that do not fit in an environment: the command is fine, so ours to report (125), not 126. */
export function envTooLarge(message: string): SpawnError {
  return new SpawnError('RWS_ENV_TOO_LARGE', message, EXIT_WRAPPER_FAILURE, 'use --inject-as file or --inject-as fd for large secrets');
}

/** MAX_ARG_STRLEN with 4 KiB pages (larger pages allow more: refused here all the same). */
export const MAX_VARIABLE_BYTES = 128 * 1024;

/** Throws RWS_ENV_TOO_LARGE naming the first variable the kernel would refuse to pass on. */
export function refuseOversizedVariables(variables: ReadonlyMap<string, string>): void {
  for (const [name, value] of variables) {
    if (Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1 > MAX_VARIABLE_BYTES) {
      throw envTooLarge(`${name} is over 128 KiB, more than one environment variable can carry (E2BIG)`);
    }
  }
}

/**
 * Throws RWS_ENV_TOO_LARGE when the child's arguments and environment together are more than the
 * kernel passes to a program: their strings (each with its NUL) and a pointer for each, within a
 * quarter of the soft stack limit, at most 6 MiB and at least 128 KiB (fs/exec.c,
 * bprm_stack_limits). The program's path is counted at PATH_MAX, as its length after the PATH
 * search is not known here. Without /proc (no stack limit to read), nothing is refused.
 */
export function refuseOversizedEnvironment(env: Readonly<Record<string, string>>, argv: readonly string[], stackLimit: number | undefined = softStackLimit()): void {
  if (stackLimit === undefined) return;
  const limit = Math.max(Math.min(6 * 1024 * 1024, Math.floor(stackLimit / 4)), MAX_VARIABLE_BYTES);
  let used = PATH_MAX;
  let count = 0;
  for (const arg of argv) {
    used += Buffer.byteLength(arg) + 1;
    count++;
  }
  for (const name of Object.keys(env)) {
    used += Buffer.byteLength(name) + 1 + Buffer.byteLength(env[name] as string) + 1;
    count++;
  }
  used += count * 8;
  if (used > limit) {
    const kib = (bytes: number): number => Math.ceil(bytes / 1024);
    throw envTooLarge(`the child's environment and arguments together are ${kib(used)} KiB, more than the ${kib(limit)} KiB the system passes to a program (E2BIG)`);
  }
}

const PATH_MAX = 4096;

/** The soft RLIMIT_STACK in bytes (Infinity when unlimited), or undefined where /proc cannot say. */
export function softStackLimit(limits = (): string => readFileSync('/proc/self/limits', 'latin1')): number | undefined {
  let text: string;
  try {
    text = limits();
  } catch {
    return undefined;
  }
  // The soft column, then the hard one and the unit: a line of another shape is not guessed at.
  const soft = /^Max stack size +(\d+|unlimited) +(?:\d+|unlimited) +bytes *$/m.exec(text)?.[1];
  if (soft === 'unlimited') return Infinity;
  const bytes = Number(soft);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}
