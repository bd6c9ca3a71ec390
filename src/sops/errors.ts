// The one error type of the SOPS module. Messages name the file and the key path, never a value,
// a key or an identity (errors.ts: callers pass names only).
import { RwsError } from '../errors.js';

export type SopsErrorCode =
  /** The file is not a SOPS YAML file we can read (syntax, structure, metadata, ENC[] format). */
  | 'RWS_SOPS_INVALID'
  /** The integrity check failed: a value or the stored MAC was changed, or the MAC is missing. */
  | 'RWS_SOPS_MAC_MISMATCH'
  /** No age identity was configured, or none of them opens any of the file's age stanzas. */
  | 'RWS_SOPS_NO_IDENTITY'
  /** An age stanza that should open could not be decrypted (corrupt stanza, bad data key). */
  | 'RWS_SOPS_DECRYPT_FAILED'
  /** A top-level name asked for is not a scalar of the file. */
  | 'RWS_SOPS_KEY_NOT_FOUND'
  /** An age key file is readable by group or others: it is a credential. */
  | 'RWS_CREDENTIAL_FILE_MODE';

export class SopsError extends RwsError {
  declare readonly code: SopsErrorCode;

  constructor(code: SopsErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(code, message, options);
  }
}

/** What to do about a file whose value or MAC fails its check, whichever check caught it. */
export const TAMPERED_HINT = 'the file was changed outside sops, or is damaged; restore it from version control';

/** Shorthand for the most common failure: a malformed file. */
export function invalid(origin: string, what: string, hint?: string): SopsError {
  return new SopsError('RWS_SOPS_INVALID', `${origin}: ${what}`, hint === undefined ? {} : { hint });
}

/** A key path as shown in messages: `a.b.c` (keys only, as in the AAD, FORMAT.md §2). */
export function showPath(path: readonly string[]): string {
  return path.length === 0 ? '(top level)' : path.map((k) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k))).join('.');
}
