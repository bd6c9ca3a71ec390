// API keys: `rws_sk_` + 32 lowercase hex. Only an HMAC-SHA256 of the key under the server's pepper
// is stored; a presented key is looked up by its first 8 hex characters and its HMAC compared
// in constant time.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { unauthorized } from '../http/http-error.js';
import { localChange } from '../audit/record.js';
import type { ApiKeyRecord, StateStore } from '../state/state-store.js';

const API_KEY_GRAMMAR = /^rws_sk_[0-9a-f]{32}$/;
const API_KEY_ID_GRAMMAR = /^ak_[0-9a-f]{16}$/;
const PREFIX_START = 'rws_sk_'.length;
const PREFIX_LENGTH = 8;
/** Compared against when no key has the presented prefix: no key's HMAC is this. */
const STAND_IN_HASH = randomBytes(32).toString('hex');

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
  await state.addApiKey(record, localChange('apikey.create', record.id, now, `secrets-server apikey create --name ${grant.name}${grant.admin ? ' --admin' : ''}${grant.fallback ? '' : ' --no-fallback'}`.slice(0, 256)));
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

/** The live key record for `presented`, or a 401 that says nothing about why. */
export async function authenticateApiKey(state: StateStore, pepper: Uint8Array, presented: string, now: Date): Promise<ApiKeyRecord> {
  if (!API_KEY_GRAMMAR.test(presented)) throw unauthorized('invalid API key');
  const candidates = await state.findApiKeys(presented.slice(PREFIX_START, PREFIX_START + PREFIX_LENGTH));
  const hash = Buffer.from(hashApiKey(pepper, presented), 'hex');
  // The same work whether or not the prefix is known: every candidate is compared (no early
  // exit), and an unknown prefix is compared against a stand-in, so the answer's timing does not
  // tell an attacker the first 32 bits of a valid key. A stored hash of another length (a
  // hand-edited row) matches nothing rather than throwing.
  const hashes = candidates.length > 0 ? candidates.map((record) => record.hash) : [STAND_IN_HASH];
  let found = -1;
  hashes.forEach((stored, i) => {
    const bytes = Buffer.from(stored, 'hex');
    const equal = bytes.length === hash.length ? timingSafeEqual(bytes, hash) : timingSafeEqual(hash, hash) && false;
    if (equal && found === -1) found = i;
  });
  const match = candidates.length > 0 ? candidates[found] : undefined;
  if (match === undefined || match.revoked_at !== null) throw unauthorized('invalid API key');
  if (match.expires_at !== null && Date.parse(match.expires_at) <= now.getTime()) throw unauthorized('invalid API key');
  return match;
}
