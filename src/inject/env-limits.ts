// What one environment variable can hold: Linux refuses an execve whose `NAME=value` string
// (with its NUL) is over MAX_ARG_STRLEN, 32 pages: 128 KiB with 4 KiB pages (E2BIG). A run finds
// out at the spawn, before any child ran; a watch's restart would find out after it had stopped
// the running child, so it asks first.
import { SpawnError, EXIT_WRAPPER_FAILURE } from '../errors.js';

/** MAX_ARG_STRLEN with 4 KiB pages (larger pages allow more: refused here all the same). */
export const MAX_VARIABLE_BYTES = 128 * 1024;

/** Throws RWS_ENV_TOO_LARGE naming the first variable the kernel would refuse to pass on. */
export function refuseOversizedVariables(variables: ReadonlyMap<string, string>): void {
  for (const [name, value] of variables) {
    if (Buffer.byteLength(name) + 1 + Buffer.byteLength(value) + 1 > MAX_VARIABLE_BYTES) {
      throw new SpawnError('RWS_ENV_TOO_LARGE', `${name} is over 128 KiB, more than one environment variable can carry (E2BIG)`, EXIT_WRAPPER_FAILURE, 'use --inject-as file or --inject-as fd for large secrets');
    }
  }
}
