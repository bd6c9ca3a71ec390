// The process's open-file limit bounds how many connections it can hold: past it accept(2) fails
// with EMFILE and every client, legitimate or not, is reset (20,000 idle connections did that for
// about 15 s). The connection cap therefore stays below the limit, with room for the store's
// files, the database, the metrics listener and the TLS files. Node has no getrlimit; on Linux
// /proc/self/limits tells the soft limit, elsewhere the cap is taken as given.
import { readFileSync } from 'node:fs';

/** Descriptors kept for everything that is not a client connection. */
export const RESERVED_DESCRIPTORS = 64;

/** The soft limit on open files, or undefined when it cannot be read (or is unlimited). */
export function openFileLimit(limitsText?: string): number | undefined {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return undefined;
    }
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  return match?.[1] === undefined || match[1] === 'unlimited' ? undefined : Number(match[1]);
}

/** The largest connection cap the limit allows, or undefined when there is no known limit. */
export function capAllowedBy(limit: number | undefined): number | undefined {
  return limit === undefined ? undefined : Math.max(1, limit - RESERVED_DESCRIPTORS);
}
