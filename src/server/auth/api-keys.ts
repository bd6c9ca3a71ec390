// API keys: `rws_sk_` + 32 lowercase hex. Only an HMAC-SHA256 of the key under the server's pepper
// is stored; a presented key is looked up by its first 8 hex characters and its HMAC compared
// in constant time.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { unauthorized } from '../http/http-error.js';
import type { ApiKeyRecord, StateStore } from '../state/state-store.js';

const API_KEY_GRAMMAR = /^rws_sk_[0-9a-f]{32}$/;
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
}

export function hashApiKey(pepper: Uint8Array, key: string): string {
  return createHmac('sha256', pepper).update(key, 'utf8').digest('hex');
}

/** Creates and stores a key; the returned key is the only copy there will ever be. */
export async function createApiKey(state: StateStore, pepper: Uint8Array, grant: ApiKeyGrant, now: Date): Promise<{ id: string; key: string }> {
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
  };
  await state.addApiKey(record);
  return { id: record.id, key };
}

/** The live key record for `presented`, or a 401 that says nothing about why. */
export async function authenticateApiKey(state: StateStore, pepper: Uint8Array, presented: string, now: Date): Promise<ApiKeyRecord> {
  if (!API_KEY_GRAMMAR.test(presented)) throw unauthorized('invalid API key');
  const candidates = await state.findApiKeys(presented.slice(PREFIX_START, PREFIX_START + PREFIX_LENGTH));
  const hash = Buffer.from(hashApiKey(pepper, presented), 'hex');
  // The same work whether or not the prefix is known: every candidate is compared (no early
  // exit), and an unknown prefix is compared against a stand-in, so the answer's timing does not
  // tell an attacker the first 32 bits of a valid key.
  const hashes = candidates.length > 0 ? candidates.map((record) => record.hash) : [STAND_IN_HASH];
  let found = -1;
  hashes.forEach((stored, i) => {
    if (timingSafeEqual(Buffer.from(stored, 'hex'), hash) && found === -1) found = i;
  });
  const match = candidates.length > 0 ? candidates[found] : undefined;
  if (match === undefined || match.revoked_at !== null) throw unauthorized('invalid API key');
  if (match.expires_at !== null && Date.parse(match.expires_at) <= now.getTime()) throw unauthorized('invalid API key');
  return match;
}
