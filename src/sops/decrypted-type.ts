// What sops's ToBytes hashes for a decrypted value: the value parsed by its type and written
// back in Go's form (FORMAT.md §2 "Types", §4). A file written by sops already holds that form;
// anything else is normalised exactly as Go would (int " +7" is an error, int "+7" hashes as "7").
import type { ValueType } from './cipher.js';
import { formatBool, formatFloat, parseBool, parseFloat64, parseInt64 } from './go-strconv.js';
import { canonicalTime } from './go-time.js';

export type Hashed =
  | { readonly ok: true; readonly bytes: Buffer | null } // null: a comment, never in the MAC (§4)
  | { readonly ok: false; readonly reason: string };

export function hashedForm(type: ValueType, plaintext: Buffer): Hashed {
  const text = (): string => plaintext.toString('utf8');
  const ok = (s: string): Hashed => ({ ok: true, bytes: Buffer.from(s, 'utf8') });
  const bad = (reason: string): Hashed => ({ ok: false, reason });
  switch (type) {
    case 'str':
    case 'bytes':
      return { ok: true, bytes: plaintext };
    case 'comment':
      return { ok: true, bytes: null };
    case 'int':
    case 'int64': {
      // strconv.Atoi / ParseInt(s, 10, 64).
      const v = parseInt64(text(), 10);
      return v === undefined ? bad('an int value that is not a decimal int64') : ok(v.toString());
    }
    case 'float': {
      const v = parseFloat64(text());
      return v === undefined ? bad('a float value that is not a number') : ok(formatFloat(v));
    }
    case 'bool': {
      const v = parseBool(text());
      return v === undefined ? bad('a bool value that is not a boolean') : ok(formatBool(v));
    }
    case 'time': {
      const v = canonicalTime(text());
      return v === undefined ? bad('a time value that is not RFC 3339') : ok(v);
    }
  }
}
