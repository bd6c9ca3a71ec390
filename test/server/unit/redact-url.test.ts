// A database URL as messages and `status` show it: where it connects, never its password, however
// the password is spelled (raw `/`, `@`, `:`, `?`, `#`, `%`, or percent-encoded).
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../../src/server/url-credentials.js';

const SAFE = 'postgres://(unparsable URL)';

/** Passwords whose every piece is a marker, so that a leak of any fragment is seen. */
const HOSTILE = ['/', '@', ':', '?', '#', '%', '%2F', '%40', '@/', '/@', '?host=/tmp#', ':5432/', '@db.internal/', ' ', '%zz', '&password='].map((c) => `LEAKONE${c}LEAKTWO`);
const MARKERS = /leakone|leaktwo/i;

describe('redactUrl', () => {
  it('shows a socket directory URL (empty host, ?host=) with its password masked', () => {
    expect(redactUrl('postgresql://u:pw@/db?host=/var/run/postgresql')).toBe('postgresql://u:***@/db?host=/var/run/postgresql');
    expect(redactUrl('postgresql://u:p%40w@/db?host=/var/run/postgresql&port=5433')).toBe('postgresql://u:***@/db?host=/var/run/postgresql&port=5433');
    expect(redactUrl('postgresql:///db?host=/var/run/postgresql')).toBe('postgresql:///db?host=/var/run/postgresql');
    expect(redactUrl('postgresql://u@/db?host=/var/run/postgresql')).toBe('postgresql://u@/db?host=/var/run/postgresql');
    expect(redactUrl('postgres://u:pw@%2Fvar%2Frun%2Fpostgresql/db')).toBe('postgres://u:***@%2Fvar%2Frun%2Fpostgresql/db');
  });

  it('shows user, host, port and database of an ordinary URL, and of its query only where it connects', () => {
    expect(redactUrl('postgres://rws:pw@db.internal:5432/rws?sslmode=verify-full')).toBe('postgres://rws:***@db.internal:5432/rws');
    expect(redactUrl('postgres://rws:pw@[::1]:5432/rws')).toBe('postgres://rws:***@[::1]:5432/rws');
    expect(redactUrl('postgres://rws@db/rws?password=LEAKONE&sslpassword=LEAKTWO&host=/run/pg')).toBe('postgres://rws@db/rws?host=/run/pg');
    expect(redactUrl('postgres://:pw@db/rws')).toBe('postgres://:***@db/rws');
    expect(redactUrl('postgres://db/rws')).toBe('postgres://db/rws');
  });

  it('never shows any piece of a hostile password, raw or percent-encoded, in any position', () => {
    for (const password of HOSTILE) {
      for (const spelled of [password, encodeURIComponent(password)]) {
        for (const url of [`postgresql://u:${spelled}@/db?host=/var/run/postgresql`, `postgres://u:${spelled}@db.internal:5432/rws`, `postgres://u:${spelled}@db.internal/rws#x`, `postgres://u:5${spelled}@h/db`]) {
          const shown = redactUrl(url);
          expect({ url, shown, leaked: MARKERS.test(shown) }).toEqual({ url, shown, leaked: false });
          expect(MARKERS.test(decodeURIComponent(shown.replace(/%(?![0-9a-f]{2})/gi, '%25')))).toBe(false);
        }
      }
    }
  });

  it('keeps the safe form where it cannot tell where the password ends, or the URL does not parse', () => {
    // A raw `/`, `?` or `#` in the password ends the authority for a parser: host, port, path or
    // query would be made of the password's pieces.
    for (const url of ['postgres://u:12/LEAKONE@h/db', 'postgres://u:5?host=/LEAKONE@/db', 'postgres://u:12#LEAKONE@host/db', 'postgres://u:pw@h/db?x=a@b', 'postgres://u:pw@h:notaport/db', 'postgres://u:pw@[::1/db', 'not a url']) {
      expect({ url, shown: redactUrl(url) }).toEqual({ url, shown: SAFE });
    }
  });
});
