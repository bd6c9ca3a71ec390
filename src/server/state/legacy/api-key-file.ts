// The api-keys.json format, checked field by field: a damaged or hand-edited file is refused
// rather than half-understood.
import { RwsError } from '../../../errors.js';
import { isValidPattern } from '../../../glob.js';
import { isValidEnvironment } from '../../store/layout.js';
import { isValidKeyName } from '../../auth/api-keys.js';
import { parseIsoTime } from '../../iso-time.js';
import type { ApiKeyRecord } from '../state-store.js';

const FIELDS = ['id', 'name', 'prefix', 'hash', 'environments', 'key_patterns', 'max_ttl_minutes', 'created_at', 'expires_at', 'revoked_at'];

export function parseApiKeysFile(text: string, path: string): ApiKeyRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(path, 'it is not JSON');
  }
  const file = value as { version?: unknown; keys?: unknown };
  if (typeof value !== 'object' || value === null || file.version !== 1 || !Array.isArray(file.keys)) {
    throw invalid(path, 'expected {"version": 1, "keys": [...]}');
  }
  const records = file.keys.map((entry, index) => parseRecord(entry, index, (what) => invalid(`${path}${lineOf(text, entry)}`, `key ${index}: ${what}`)));
  refuseDuplicates(records, path);
  return records;
}

/**
 * The old server never wrote a key twice. Imported, the second of an id was dropped without a
 * word (its holder locked out), and of two ids with one hash only one was ever found.
 */
function refuseDuplicates(records: readonly ApiKeyRecord[], path: string): void {
  for (const field of ['id', 'hash'] as const) {
    const first = new Map<string, number>();
    for (const [index, record] of records.entries()) {
      const earlier = first.get(record[field]);
      if (earlier !== undefined) throw invalid(path, `key ${index}: its ${field} is that of key ${earlier}`);
      first.set(record[field], index);
    }
  }
}

/** ` line N` of the key's id in the file, when it can be found (JSON.parse keeps no positions). */
function lineOf(text: string, entry: unknown): string {
  const id = (entry as { id?: unknown } | null)?.id;
  const at = typeof id === 'string' ? text.indexOf(JSON.stringify(id)) : -1;
  return at < 0 ? '' : ` line ${text.slice(0, at).split('\n').length}`;
}

function parseRecord(entry: unknown, index: number, bad: (what: string) => RwsError): ApiKeyRecord {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw bad('not an object');
  const r = entry as Record<string, unknown>;
  const keys = Object.keys(r);
  if (keys.length !== FIELDS.length || !FIELDS.every((field) => Object.hasOwn(r, field))) throw bad(`fields must be ${FIELDS.join(', ')}`);
  const str = (field: string, pattern?: RegExp): string => {
    const v = r[field];
    if (typeof v !== 'string' || (pattern && !pattern.test(v))) throw bad(`${field} is malformed`);
    return v;
  };
  const date = (field: string): string | null => (r[field] === null ? null : checkDate(str(field), () => bad(`${field} is not a date`)));
  const list = (field: string, valid: (item: string) => boolean): string[] => {
    const v = r[field];
    if (!Array.isArray(v) || v.length === 0 || !v.every((item) => typeof item === 'string' && valid(item))) throw bad(`${field} is malformed`);
    return v as string[];
  };
  // The grammar `apikey create` keeps: a name is printed by `apikey list` and the console.
  const keyName = (name: string): string => {
    if (!isValidKeyName(name)) throw bad('name must be 1 to 128 characters without control characters, as apikey create --name');
    return name;
  };
  const ttl = r.max_ttl_minutes;
  if (ttl !== null && !(Number.isSafeInteger(ttl) && (ttl as number) > 0)) throw bad('max_ttl_minutes is malformed');
  return {
    id: str('id', /^ak_[0-9a-f]{16}$/),
    name: keyName(str('name')),
    prefix: str('prefix', /^[0-9a-f]{8}$/),
    hash: str('hash', /^[0-9a-f]{64}$/),
    environments: list('environments', isValidEnvironment),
    key_patterns: list('key_patterns', isValidPattern),
    max_ttl_minutes: ttl as number | null,
    created_at: checkDate(str('created_at'), () => bad('created_at is not a date')),
    expires_at: date('expires_at'),
    revoked_at: date('revoked_at'),
    // The files predate admin keys: every key in them is a read key.
    admin: false,
    // ... and predate the offline fallback, which every key allowed until --no-fallback.
    fallback: true,
  };
}

function checkDate(value: string, fail: () => Error): string {
  if (parseIsoTime(value) === undefined) throw fail();
  return value;
}

function invalid(where: string, reason: string): RwsError {
  return new RwsError('RWS_STATE_INVALID', `${where} is not a file this secrets-server wrote: ${reason}; nothing was imported`, {
    hint: 'restore the file from a backup, or recreate the keys with secrets-server apikey create',
  });
}
