// What may be shown of an API key, by `apikey list` and the admin API alike: never the key, its
// hash, or its lookup prefix (the prefix is the key's first characters).
import type { ApiKeyView } from '../state/state-store.js';

export interface PublicApiKey {
  id: string;
  name: string;
  admin: boolean;
  /** False: clients are told never to keep an offline copy of what this key reads. */
  fallback: boolean;
  environments: readonly string[];
  key_patterns: readonly string[];
  max_ttl_minutes: number | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  live_tokens: number;
  /** False: its grants do not match their MAC (changed outside secrets-server): the key is refused. */
  grants_intact: boolean;
}

export function publicApiKey(key: ApiKeyView): PublicApiKey {
  return {
    id: key.id,
    name: key.name,
    admin: key.admin,
    fallback: key.fallback,
    environments: key.environments,
    key_patterns: key.key_patterns,
    max_ttl_minutes: key.max_ttl_minutes,
    created_at: key.created_at,
    expires_at: key.expires_at,
    last_used_at: key.last_used_at,
    revoked_at: key.revoked_at,
    live_tokens: key.live_tokens,
    grants_intact: key.grants_intact,
  };
}
