// All mutable server state sits behind this one interface: API keys, token uses, revocations and
// the audit trail. `local-state.ts` keeps it in files in the store directory; a database-backed
// implementation must keep the same guarantees: `consumeUse` is exact under concurrency and
// durable before it resolves, and `appendAudit` resolves only once the line is stored.

export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string;
  /** The first characters of the key, for lookup; the key itself is never stored. */
  readonly prefix: string;
  /** HMAC-SHA256 of the whole key under the server's pepper, hex. */
  readonly hash: string;
  readonly environments: readonly string[];
  readonly key_patterns: readonly string[];
  readonly max_ttl_minutes: number | null;
  readonly created_at: string;
  readonly expires_at: string | null;
  readonly revoked_at: string | null;
}

export interface ApiKeyView extends ApiKeyRecord {
  readonly last_used_at: string | null;
}

export interface IssuedToken {
  readonly jti: string;
  readonly apiKeyId: string;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
}

export interface PresentedToken {
  readonly jti: string;
  readonly expiresAt: number;
  readonly usageLimit: number | null;
}

/** `revoked` covers a revoked token and a token whose API key was revoked or has expired. */
export type UseOutcome = 'ok' | 'revoked' | 'exhausted';

export interface TokenStatus {
  readonly outcome: UseOutcome;
  /** The issuing API key, when this store issued the token. */
  readonly apiKeyId: string | null;
}

export interface StateStore {
  listApiKeys(): Promise<ApiKeyView[]>;
  /** Keys whose `prefix` is this one; the caller compares hashes in constant time. */
  findApiKeys(prefix: string): Promise<ApiKeyRecord[]>;
  addApiKey(record: ApiKeyRecord): Promise<void>;
  /** False when there is no such key; revoking twice keeps the first time. */
  revokeApiKey(id: string, at: Date): Promise<boolean>;
  /** Remembers which key issued a token (so revoking the key ends its tokens) and when the key was used. */
  recordIssue(token: IssuedToken, at: Date): Promise<void>;
  /** Counts one use unless the token is revoked or spent; durable before it resolves. */
  consumeUse(token: PresentedToken): Promise<UseOutcome>;
  /** Like consumeUse without counting: is this token still good, and which key issued it? */
  checkToken(token: PresentedToken): Promise<TokenStatus>;
  revokeToken(token: PresentedToken): Promise<void>;
  appendAudit(line: string): Promise<void>;
  close(): Promise<void>;
}
