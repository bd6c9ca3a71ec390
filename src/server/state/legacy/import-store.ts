// A store from before the database (api-keys.json, token-state.log, audit.log) is imported once:
// its keys, the records of tokens still alive with their uses and revocations, and its audit
// lines, appended to the chain in their order. Done in one transaction with the `legacy_import`
// mark, so it happens exactly once however many processes start together; the files are then
// renamed to *.imported. A damaged file refuses the whole import: nothing half-imported.
import { promises as fs } from 'node:fs';
import { RwsError } from '../../../errors.js';
import { AUDIT_EVENTS, type AuditRecord } from '../../audit/record.js';
import { readPrivateFile } from '../../store/files.js';
import type { StorePaths } from '../../store/layout.js';
import type { ApiKeyRecord } from '../state-store.js';
import { parseApiKeysFile } from './api-key-file.js';

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
  const keys = (keysText === undefined ? [] : parseApiKeysFile(keysText)).map((key) => ({
    ...key,
    created_at: canonical(key.created_at),
    expires_at: key.expires_at === null ? null : canonical(key.expires_at),
    revoked_at: key.revoked_at === null ? null : canonical(key.revoked_at),
  }));
  const { tokens, lastUsed } = stateText === undefined ? { tokens: [], lastUsed: new Map<string, string>() } : replayStateLog(stateText, paths.stateLog, nowSeconds);
  const audit = auditText === undefined ? [] : parseAuditLog(auditText, paths.auditLog);
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
  try {
    return await readPrivateFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isInt = (value: unknown): value is number => Number.isSafeInteger(value);

function replayStateLog(text: string, file: string, nowSeconds: number): { tokens: LegacyToken[]; lastUsed: Map<string, string> } {
  const tokens = new Map<string, LegacyToken>();
  const lastUsed = new Map<string, string>();
  const entry = (jti: string, exp: number): LegacyToken => {
    let token = tokens.get(jti);
    if (token === undefined) tokens.set(jti, (token = { jti, apiKeyId: '', expiresAt: exp, issuedAt: exp - 3600, uses: 0, revoked: false }));
    return token;
  };
  for (const [index, r] of jsonLines(text, file)) {
    if (r.t === 'issue' && isString(r.jti) && isString(r.key) && isInt(r.exp) && isString(r.at)) {
      const token = entry(r.jti, r.exp);
      token.apiKeyId = r.key;
      const at = Date.parse(r.at);
      if (Number.isFinite(at)) token.issuedAt = Math.floor(at / 1000);
      lastUsed.set(r.key, r.at);
    } else if (r.t === 'use' && isString(r.jti) && isInt(r.exp) && (r.n === undefined || (isInt(r.n) && r.n > 0))) {
      entry(r.jti, r.exp).uses += (r.n as number | undefined) ?? 1;
    } else if (r.t === 'revoke' && isString(r.jti) && isInt(r.exp)) {
      entry(r.jti, r.exp).revoked = true;
    } else if (r.t === 'keyuse' && isString(r.key) && isString(r.at)) {
      lastUsed.set(r.key, r.at);
    } else {
      throw damaged(file, index);
    }
  }
  // Tokens without an issue record keep an empty key id: no key matches it, so they stay refused.
  return { tokens: [...tokens.values()].filter((token) => token.expiresAt > nowSeconds), lastUsed };
}

const AUDIT_FIELDS = ['time', 'event', 'outcome', 'status', 'error_code', 'api_key_id', 'jti', 'subject', 'environment', 'keys', 'client'];

function parseAuditLog(text: string, file: string): AuditRecord[] {
  const records: AuditRecord[] = [];
  for (const [index, r] of jsonLines(text, file)) {
    const nullableString = (value: unknown) => value === null || isString(value);
    const ok =
      !Array.isArray(r) &&
      Object.keys(r).length === AUDIT_FIELDS.length && AUDIT_FIELDS.every((field) => Object.hasOwn(r, field)) &&
      isString(r.time) && AUDIT_EVENTS.includes(r.event as AuditRecord['event']) && (r.outcome === 'success' || r.outcome === 'failure') &&
      isInt(r.status) && nullableString(r.error_code) && nullableString(r.api_key_id) && nullableString(r.jti) && nullableString(r.subject) &&
      nullableString(r.environment) && (r.keys === null || (Array.isArray(r.keys) && r.keys.every(isString))) && isString(r.client);
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

function damaged(file: string, index: number): RwsError {
  return new RwsError('RWS_STATE_INVALID', `${file} line ${index + 1} is not a record this secrets-server wrote; nothing was imported`, {
    hint: 'restore the file from a backup, or move it out of the store to start without it',
  });
}
