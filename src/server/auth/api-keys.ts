// API keys: `rws_sk_` + 32 lowercase hex. Only an HMAC-SHA256 of the key under the server's pepper
// is stored, and a presented key is looked up by that HMAC. Its first 8 hex characters are kept
// as `prefix` only to tell keys apart in listings.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { unauthorized } from '../http/http-error.js';
import { localChange } from '../audit/record.js';
import type { ApiKeyRecord, StateStore } from '../state/state-store.js';
import { holdsApiKey } from '../../credential-shapes.js';

const API_KEY_GRAMMAR = /^rws_sk_[0-9a-f]{32}$/;
/** One message for a key never made, revoked or expired: which of them is not told. */
export const NOT_LIVE = 'invalid API key: unknown, revoked or expired; use a live key (secrets-server apikey list shows them)';
const API_KEY_ID_GRAMMAR = /^ak_[0-9a-f]{16}$/;
/** A key's name, shown by `apikey list` and the console: 1 to 128 characters, none a control character. */
const KEY_NAME_GRAMMAR = /^[^\p{Cc}\p{Cs}]{1,128}$/u;

/**
 * The one name grammar: `apikey create --name`, the admin API's `name`, and `db import`. A name
 * holding an API key (the new key's neighbour pasted by mistake) would be shown by every listing.
 */
export function isValidKeyName(name: string): boolean {
  return KEY_NAME_GRAMMAR.test(name) && !holdsApiKey(name);
}
const PREFIX_START = 'rws_sk_'.length;
const PREFIX_LENGTH = 8;

export interface ApiKeyGrant {
  name: string;
  environments: string[];
  keyPatterns: string[];
  maxTtlMinutes: number | null;
  expiresAt: Date | null;
  /** Admin keys manage (keys, tokens, secrets, the audit trail) and never mint read tokens. */
  admin: boolean;
  /** False: batch answers tell clients never to cache this key's secrets (--no-fallback). */
  fallback: boolean;
}

export function isValidApiKeyId(id: string): boolean {
  return API_KEY_ID_GRAMMAR.test(id);
}

export function hashApiKey(pepper: Uint8Array, key: string): string {
  return createHmac('sha256', pepper).update(key, 'utf8').digest('hex');
}

/** Creates and stores a key from the server's host; the returned key is the only copy there will ever be. */
export async function createApiKey(state: StateStore, pepper: Uint8Array, grant: ApiKeyGrant, now: Date): Promise<{ id: string; key: string }> {
  const { record, key } = newApiKey(pepper, grant, now);
  const command = `secrets-server apikey create --name ${grant.name}${grant.admin ? ' --admin' : ''}${grant.fallback ? '' : ' --no-fallback'}`;
  // Cut by code points: a cut inside an emoji of the name would be stored as U+FFFD.
  await state.addApiKey(record, localChange('apikey.create', record.id, now, [...command].slice(0, 256).join('')));
  return { id: record.id, key };
}

/** A fresh key and the record to store for it (the caller stores it with its audit row). */
export function newApiKey(pepper: Uint8Array, grant: ApiKeyGrant, now: Date): { record: ApiKeyRecord; key: string } {
  const key = `rws_sk_${randomBytes(16).toString('hex')}`;
  const record: ApiKeyRecord = {
    id: `ak_${randomBytes(8).toString('hex')}`,
    name: grant.name,
    prefix: key.slice(PREFIX_START, PREFIX_START + PREFIX_LENGTH),
    hash: hashApiKey(pepper, key),
    environments: grant.environments,
    key_patterns: grant.keyPatterns,
    max_ttl_minutes: grant.maxTtlMinutes,
    created_at: now.toISOString(),
    expires_at: grant.expiresAt?.toISOString() ?? null,
    revoked_at: null,
    admin: grant.admin,
    fallback: grant.fallback,
  };
  return { record, key };
}

/** The live key record for `presented`, its grants intact, or a 401 that says nothing about why. */
export async function authenticateApiKey(state: StateStore, pepper: Uint8Array, presented: string, now: Date): Promise<ApiKeyRecord> {
  // A token sent where the key that mints it goes is said as such: the fix is the other credential.
  if (!API_KEY_GRAMMAR.test(presented)) throw unauthorized(presented.startsWith('eyJ') ? 'this route takes an API key (rws_sk_ and 32 hex digits), not a token' : 'invalid API key; an API key is rws_sk_ and 32 lower-case hex digits');
  // Looked up by the HMAC of the whole key: a wrong key with a valid key's first characters
  // costs exactly what any wrong key costs, so timing tells an attacker nothing about a prefix
  // (the HMAC is keyed by the pepper, so its value cannot be steered either).
  const hash = hashApiKey(pepper, presented);
  const match = await state.findApiKey(hash);
  // The database compared the text; this confirms it in constant time (a hand-edited row whose
  // hash differs in case or length matches nothing rather than throwing).
  const stored = Buffer.from(match?.hash ?? '', 'hex');
  const wanted = Buffer.from(hash, 'hex');
  if (match === undefined || stored.length !== wanted.length || !timingSafeEqual(stored, wanted)) throw unauthorized(NOT_LIVE);
  // Grants raised by a writer of the database (or a row with no MAC) are refused as an unknown
  // key: the client learns nothing of why; the server logged the row once (grant-seal.ts).
  if (!match.grants_intact) throw unauthorized(NOT_LIVE);
  if (match.revoked_at !== null) throw unauthorized(NOT_LIVE);
  if (match.expires_at !== null && Date.parse(match.expires_at) <= now.getTime()) throw unauthorized(NOT_LIVE);
  return match;
}
