// `keys -e ENV [-k GLOB]`: the names in scope, one per line, never a value.
import { list, resolveVaultContext, str, validPatterns } from '../../config/resolve.js';
import type { CommandContext } from './context.js';
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
    for (const pattern of patterns.length > 0 ? patterns : ['*']) {
      if (credential.kind === 'token') {
        for (const name of await client.listKeys(credential.value, environment, pattern)) names.add(name);
        continue;
      }
      const minted = await client.mintToken(credential.value, { subject: str(values.subject) ?? `keys@${facts.env.USER ?? 'unknown'}`, environment, keyPattern: pattern, ttlMinutes: 1, usageLimit: 1 });
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
  for (const name of [...names].sort()) context.stdout.write(`${name}\n`);
  return 0;
}
