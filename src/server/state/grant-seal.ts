// What keeps a writer of the state database from raising an API key's grants. The key itself is
// kept only as an HMAC under the pepper, so such a writer (a shared PostgreSQL role, a copied
// state.db) cannot make a key; but it could set `admin = 1` or `environments = '["*"]'` on the
// row of a key it holds. Every column the server never changes after creation is therefore
// sealed by an HMAC under a key derived from the pepper (never the pepper itself: it already
// hashes keys and console sessions), and a row that does not match is refused as an unknown key.
// `revoked_at` and `last_used_at` change later and are left out: a revocation undone by such a
// writer is a replay no MAC of the row can tell from the row before its revocation.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord } from './state-store.js';

/** Domain separation: this HMAC key is for key grants and nothing else. */
const GRANT_MAC_CONTEXT = 'rws api-key grant v1';
const MAC_GRAMMAR = /^[0-9a-f]{64}$/;

export class GrantSeal {
  readonly #key: Buffer;

  constructor(pepper: Uint8Array) {
    this.#key = createHmac('sha256', pepper).update(GRANT_MAC_CONTEXT, 'utf8').digest();
  }

  /** The MAC to store with a key's row, hex. */
  mac(record: ApiKeyRecord): string {
    return createHmac('sha256', this.#key).update(canonicalGrant(record), 'utf8').digest('hex');
  }

  /** Whether `stored` (the row's grant_mac, anything a hand put there) is this record's MAC, compared in constant time. */
  matches(record: ApiKeyRecord, stored: unknown): boolean {
    // NULL (a row the upgrade did not seal, or one inserted by hand) and text of another shape
    // match nothing; Buffer.from would silently drop what is not hex.
    if (typeof stored !== 'string' || !MAC_GRAMMAR.test(stored)) return false;
    return timingSafeEqual(Buffer.from(this.mac(record), 'hex'), Buffer.from(stored, 'hex'));
  }
}

/**
 * The sealed columns as the server reads them (after toApiKey's checks), in one unambiguous
 * encoding: a JSON array in a fixed order. Sealing what is honoured, not the text stored, makes
 * `admin = '1'` (text SQLite keeps, which reads as an admin) a change like `admin = 1`.
 */
export function canonicalGrant(record: ApiKeyRecord): string {
  return JSON.stringify([
    record.id,
    record.hash,
    record.prefix,
    record.name,
    record.environments,
    record.key_patterns,
    record.max_ttl_minutes,
    record.created_at,
    record.expires_at,
    record.admin,
    record.fallback,
  ]);
}

/** The seal, made from the store's pepper the first time it is needed (a command that reads no key never needs the file). */
export type SealSource = () => Promise<GrantSeal>;

export function lazySeal(readPepper: () => Promise<Uint8Array>): SealSource {
  let made: Promise<GrantSeal> | undefined;
  return () => {
    made ??= readPepper().then(
      (pepper) => new GrantSeal(pepper),
      (error: unknown) => {
        // A pepper file put back later is read then; the failure is not kept.
        made = undefined;
        throw error;
      },
    );
    return made;
  };
}
