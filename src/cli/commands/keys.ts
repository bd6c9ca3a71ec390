// `keys -e ENV [-k GLOB]`: the names in scope, one per line, never a value.
import { list, resolveVaultContext, str, subjectUser, validPatterns, validSubject } from '../../config/resolve.js';
import type { CommandContext } from './context.js';
import { redactCredentials } from '../output.js';
import type { VaultClient } from '../../vault-client/index.js';
import { requireEnvironment } from './token.js';

export async function listKeys(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const vault = await resolveVaultContext(values, facts, log.warn, log.debug, log.progress);
  const environment = requireEnvironment(vault.environment);
  const patterns = validPatterns('--key-pattern', list(values['key-pattern']).length > 0 ? list(values['key-pattern']) : vault.patterns);
  const credential = await vault.credential();
  const { VaultClient } = await import('../../vault-client/index.js');
  const client = await VaultClient.create(vault.client);
  const names = new Set<string>();
  try {
    const selected = patterns.length === 0 && credential.kind === 'api-key' ? await grantedPatterns(client, credential.value, environment) : patterns;
    for (const pattern of selected.length > 0 ? selected : ['*']) {
      if (credential.kind === 'token') {
        for (const name of await client.listKeys(credential.value, environment, pattern)) names.add(name);
        continue;
      }
      const minted = await client.mintToken(credential.value, { subject: validSubject(str(values.subject)) ?? `keys@${subjectUser(facts)}`, environment, keyPattern: pattern, ttlMinutes: 1, usageLimit: 1 });
      try {
        // The pattern again, though the token is scoped to it: the answer is then checked against it.
        for (const name of await client.listKeys(minted.token, environment, pattern)) names.add(name);
      } finally {
        await client.revokeToken(minted.token).catch(() => log.warn('RWS_REVOKE_FAILED', `could not revoke token ${minted.jti}; it expires at ${minted.expiresAt}`));
      }
    }
  } finally {
    await client.close();
  }
  // A name is the vault's word: `rws_sk_` + hex is a valid one, so a vault echoing the API key it
  // was sent as a secret name would have it printed.
  for (const name of [...names].sort()) context.stdout.write(`${redactCredentials(name)}\n`);
  return 0;
}

/**
 * With no -k, "the names in scope" are those the key's grant covers: a token for `*` is refused
 * to any key granted less (most keys), which made `keys -e ENV`, the hint of every 404, fail.
 * A server without /api/v1/auth/self (404) is asked for `*` as before.
 */
async function grantedPatterns(client: VaultClient, apiKey: string, environment: string): Promise<string[]> {
  try {
    const key = await client.describeApiKey(apiKey);
    return key.environments.includes(environment) ? key.keyPatterns : [];
  } catch (error) {
    if ((error as { status?: number }).status === 404) return [];
    throw error;
  }
}
