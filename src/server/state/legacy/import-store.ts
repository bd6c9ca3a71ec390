// A store from before the database (api-keys.json, token-state.log, audit.log) is imported once:
// its keys, the records of tokens still alive with their uses and revocations, and its audit
// lines, appended to the chain in their order. Done in one transaction with the `legacy_import`
// mark, so it happens exactly once however many processes start together; the files are then
// renamed to *.imported. A damaged file refuses the whole import: nothing half-imported.
import { promises as fs } from 'node:fs';
import { RwsError } from '../../../errors.js';
import { AUDIT_EVENTS, type AuditRecord } from '../../audit/record.js';
import { readPrivateBytes } from '../../store/files.js';
import type { StorePaths } from '../../store/layout.js';
import type { ApiKeyRecord } from '../state-store.js';
import { parseApiKeysFile } from './api-key-file.js';
import { LAST_EPOCH_SECOND } from '../sql/row-values.js';

const MIB = 1024 * 1024;
/**
 * Every file is read whole and imported in one transaction. Every command and `serve` import at
 * start, so one file past V8's longest string (about 512 MiB) failed each of them as an internal error.
 */
const MAX_LEGACY_BYTES = 256 * MIB;
const MAX_LINE_CHARS = MIB;
const LEGACY_HINT = 'restore the file from a backup, or move it out of the store (keep it as an archive) to start without it';

export interface LegacyToken {
  jti: string;
  apiKeyId: string;
  expiresAt: number;
  issuedAt: number;
  uses: number;
  revoked: boolean;
}

export interface LegacyState {
  keys: ApiKeyRecord[];
  lastUsed: Map<string, string>;
  tokens: LegacyToken[];
  audit: AuditRecord[];
  files: string[];
}

/** What the store's legacy files hold, or undefined when it has none. */
export async function readLegacyStore(paths: StorePaths, nowSeconds: number): Promise<LegacyState | undefined> {
  const [keysText, stateText, auditText] = await Promise.all([paths.apiKeys, paths.stateLog, paths.auditLog].map(readIfPresent));
  if (keysText === undefined && stateText === undefined && auditText === undefined) return undefined;
  // Dates are compared as text in the database: store them in the one canonical form.
  const keys = (keysText === undefined ? [] : parseApiKeysFile(keysText, paths.apiKeys)).map((key) => ({
    ...key,
    created_at: canonical(key.created_at),
    expires_at: key.expires_at === null ? null : canonical(key.expires_at),
    revoked_at: key.revoked_at === null ? null : canonical(key.revoked_at),
  }));
  const { tokens, lastUsed } = stateText === undefined ? { tokens: [], lastUsed: new Map<string, string>() } : replayStateLog(stateText, paths.stateLog, nowSeconds);
  const audit = auditText === undefined ? [] : parseAuditLog(auditText, paths.auditLog, nowSeconds);
  const files = [[paths.apiKeys, keysText], [paths.stateLog, stateText], [paths.auditLog, auditText]].filter(([, text]) => text !== undefined).map(([file]) => file as string);
  return { keys, lastUsed, tokens, audit, files };
}

function canonical(date: string): string {
  const parsed = new Date(date);
  if (Number.isNaN(parsed.getTime())) throw new RwsError('RWS_STATE_INVALID', `api-keys.json holds a date that is not one (${date.slice(0, 40)}); nothing was imported`);
  return parsed.toISOString();
}

export async function markImported(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((file) => fs.rename(file, `${file}.imported`).catch(() => undefined)));
}

async function readIfPresent(file: string): Promise<string | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readPrivateBytes(file, { maxBytes: MAX_LEGACY_BYTES, tooLarge: (size) => tooLarge(file, size) });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // The old server wrote JSON, always UTF-8: other bytes are damage, never decoded into U+FFFD.
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new RwsError('RWS_STATE_INVALID', `${file} is not UTF-8 text, as every file this secrets-server wrote is; nothing was imported`, { hint: LEGACY_HINT });
  }
}

function tooLarge(file: string, size: number): RwsError {
  return new RwsError('RWS_STATE_INVALID', `${file} is ${Math.ceil(size / MIB)} MiB, over the ${MAX_LEGACY_BYTES / MIB} MiB a legacy file may hold; nothing was imported`, { hint: LEGACY_HINT });
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isInt = (value: unknown): value is number => Number.isSafeInteger(value);
/** A token's expiry that a date can hold: one past year 9999 failed every listing of tokens, and was never pruned. */
const isEpoch = (value: unknown): value is number => isInt(value) && value >= 0 && value <= LAST_EPOCH_SECOND;
/**
 * Text the server writes: no control character (a NUL, which PostgreSQL's text cannot hold, an
 * ANSI escape, a newline) and no lone surrogate (stored as U+FFFD, it would break the chain).
 */
const isText = (value: unknown): value is string => isString(value) && /^[^\p{Cc}\p{Cs}]*$/u.test(value);
const isKeyId = (value: unknown): value is string => isString(value) && /^ak_[0-9a-f]{16}$/.test(value);
/** A moment the server recorded: its own form (`toISOString`), and not after the import (a minute's leeway). */
const isPastTime = (value: unknown, nowSeconds: number): value is string => {
  if (!isString(value)) return false;
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value && date.getTime() <= (nowSeconds + 60) * 1000;
};

function replayStateLog(text: string, file: string, nowSeconds: number): { tokens: LegacyToken[]; lastUsed: Map<string, string> } {
  const tokens = new Map<string, LegacyToken>();
  const lastUsed = new Map<string, string>();
  const entry = (jti: string, exp: number): LegacyToken => {
    let token = tokens.get(jti);
    if (token === undefined) tokens.set(jti, (token = { jti, apiKeyId: '', expiresAt: exp, issuedAt: exp - 3600, uses: 0, revoked: false }));
    return token;
  };
  // The grammar of tokens.ts's isValidJti, not imported: that module loads jose, which a command
  // that only opens its state must not pay for.
  const isJti = (value: unknown): value is string => isString(value) && /^[A-Za-z0-9_-]{16,64}$/.test(value);
  for (const [index, r] of jsonLines(text, file)) {
    if (r.t === 'issue' && isJti(r.jti) && isKeyId(r.key) && isEpoch(r.exp) && isPastTime(r.at, nowSeconds)) {
      const token = entry(r.jti, r.exp);
      token.apiKeyId = r.key;
      token.issuedAt = Math.floor(Date.parse(r.at) / 1000);
      lastUsed.set(r.key, r.at);
    } else if (r.t === 'use' && isJti(r.jti) && isEpoch(r.exp) && (r.n === undefined || (isInt(r.n) && r.n > 0))) {
      const token = entry(r.jti, r.exp);
      const uses = token.uses + ((r.n as number | undefined) ?? 1);
      // A count past 2^53 is not a count: the sum would be rounded, and no token is used that often.
      if (!Number.isSafeInteger(uses)) throw damaged(file, index, `the uses of token ${r.jti} add up past ${Number.MAX_SAFE_INTEGER}`);
      token.uses = uses;
    } else if (r.t === 'revoke' && isJti(r.jti) && isEpoch(r.exp)) {
      entry(r.jti, r.exp).revoked = true;
    } else if (r.t === 'keyuse' && isKeyId(r.key) && isPastTime(r.at, nowSeconds)) {
      lastUsed.set(r.key, r.at);
    } else {
      throw damaged(file, index);
    }
  }
  // Tokens without an issue record keep an empty key id: no key matches it, so they stay refused.
  return { tokens: [...tokens.values()].filter((token) => token.expiresAt > nowSeconds), lastUsed };
}

const AUDIT_FIELDS = ['time', 'event', 'outcome', 'status', 'error_code', 'api_key_id', 'jti', 'subject', 'environment', 'keys', 'client'];

function parseAuditLog(text: string, file: string, nowSeconds: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (const [index, r] of jsonLines(text, file)) {
    const nullableText = (value: unknown) => value === null || isText(value);
    const ok =
      !Array.isArray(r) &&
      Object.keys(r).length === AUDIT_FIELDS.length && AUDIT_FIELDS.every((field) => Object.hasOwn(r, field)) &&
      isPastTime(r.time, nowSeconds) && AUDIT_EVENTS.includes(r.event as AuditRecord['event']) && (r.outcome === 'success' || r.outcome === 'failure') &&
      isInt(r.status) && (r.status === 0 || ((r.status as number) >= 100 && (r.status as number) <= 599)) &&
      nullableText(r.error_code) && (r.api_key_id === null || isKeyId(r.api_key_id)) && nullableText(r.jti) && nullableText(r.subject) &&
      nullableText(r.environment) && (r.keys === null || (Array.isArray(r.keys) && r.keys.every(isText))) && isText(r.client);
    if (!ok) throw damaged(file, index);
    records.push({ ...(r as unknown as AuditRecord), count: 1 });
  }
  return records;
}

/**
 * The complete lines of a JSON-lines file, each an object, with their index. A crash could leave
 * the last line half-written (no newline): it never counted, and is dropped.
 */
function* jsonLines(text: string, file: string): Generator<[number, Record<string, unknown>]> {
  for (const [index, line] of text.split('\n').slice(0, -1).entries()) {
    // The longest line the server wrote is an audit row naming 1,000 names of 128 characters (about
    // 130 KB); a longer one is no record of it, and was parsed and stored whole, to be printed by `audit`.
    if (line.length > MAX_LINE_CHARS) throw damaged(file, index, `over ${MAX_LINE_CHARS / MIB} MiB, longer than any line this secrets-server wrote`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw damaged(file, index);
    }
    if (typeof value !== 'object' || value === null) throw damaged(file, index);
    yield [index, value as Record<string, unknown>];
  }
}

function damaged(file: string, index: number, why = 'not a record this secrets-server wrote'): RwsError {
  return new RwsError('RWS_STATE_INVALID', `${file} line ${index + 1}: ${why}; nothing was imported`, { hint: LEGACY_HINT });
}
