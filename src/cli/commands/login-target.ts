// What login, logout and whoami share: which slot of the store (vault URL in stored form and
// profile) this invocation means, and how a stored or served key description reads.
import { UsageError } from '../../errors.js';
import type { ProcessFacts, VaultContext } from '../../config/resolve.js';
import type { StoredLogin } from '../../config/credential-store.js';

export interface LoginTarget {
  path: string;
  url: string;
  profile: string;
}

export async function loginTarget(vault: VaultContext, facts: ProcessFacts): Promise<LoginTarget> {
  const { credentialsPath, validProfile, vaultUrlKey } = await import('../../config/credential-store.js');
  if (!vault.client.baseUrl) throw new UsageError('no vault URL configured', 'pass --vault-url, set RWS_VAULT_URL or vault_url in the config file');
  const url = vaultUrlKey(vault.client.baseUrl);
  // The vault client explains a bad URL in detail; this only guards the store's key.
  if (url === undefined) throw new UsageError('the vault URL is not an http(s) URL without credentials, query or fragment', 'give it as https://HOST[:PORT][/PREFIX]');
  if (!validProfile(vault.profile)) throw new UsageError(`--profile ${JSON.stringify(vault.profile.slice(0, 64))} is not a profile name`, 'profile names use letters, digits, _, . and -');
  const path = credentialsPath(facts.env);
  if (path === undefined) throw new UsageError('neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the key', 'set HOME');
  return { path, url, profile: vault.profile };
}

export function describeGrants(login: Pick<StoredLogin, 'environments' | 'key_patterns' | 'expires_at' | 'admin'>): string {
  const environments = login.environments.length > 0 ? login.environments.join(', ') : '(none)';
  const patterns = login.key_patterns.length > 0 ? login.key_patterns.join(', ') : '(none)';
  return `grants environments ${environments} with key patterns ${patterns}; expires ${login.expires_at ?? 'never'}${login.admin ? '; admin key' : ''}`;
}
