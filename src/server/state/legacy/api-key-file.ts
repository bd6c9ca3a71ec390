// The api-keys.json format, checked field by field: a damaged or hand-edited file is refused
// rather than half-understood.
import { RwsError } from '../../../errors.js';
import { isValidPattern } from '../../../glob.js';
import { isValidEnvironment } from '../../store/layout.js';
import type { ApiKeyRecord } from '../state-store.js';

const FIELDS = ['id', 'name', 'prefix', 'hash', 'environments', 'key_patterns', 'max_ttl_minutes', 'created_at', 'expires_at', 'revoked_at'];

export function parseApiKeysFile(text: string): ApiKeyRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid('it is not JSON');
  }
  const file = value as { version?: unknown; keys?: unknown };
  if (typeof value !== 'object' || value === null || file.version !== 1 || !Array.isArray(file.keys)) {
    throw invalid('expected {"version": 1, "keys": [...]}');
  }
  return file.keys.map((entry, index) => parseRecord(entry, index));
}

function parseRecord(entry: unknown, index: number): ApiKeyRecord {
  const bad = (what: string): RwsError => invalid(`key ${index}: ${what}`);
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
  const ttl = r.max_ttl_minutes;
  if (ttl !== null && !(Number.isSafeInteger(ttl) && (ttl as number) > 0)) throw bad('max_ttl_minutes is malformed');
  return {
    id: str('id', /^ak_[0-9a-f]{16}$/),
    name: str('name'),
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
  if (Number.isNaN(Date.parse(value))) throw fail();
  return value;
}

function invalid(reason: string): RwsError {
  return new RwsError('RWS_STORE_INVALID', `api-keys.json cannot be used: ${reason}`, {
    hint: 'restore the file from a backup, or recreate the keys with secrets-server apikey create',
  });
}
