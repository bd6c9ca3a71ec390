// `token generate` mints a token for use elsewhere (cron hosts that hold no API key, CI steps);
// `token revoke` revokes the token in RWS_TOKEN / --token-file.
import { UsageError } from '../../errors.js';
import { count, list, resolveVaultContext, str, subjectUser, validEnvironment, validPatterns, validSubject } from '../../config/resolve.js';
import type { CommandContext } from './context.js';

export async function tokenGenerate(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  if (context.stdout.isTTY && values.force !== true) {
    throw new UsageError('refusing to print a token to a terminal', 'redirect it to a file (umask 077) or pass --force');
  }
  const vault = await resolveVaultContext(values, facts, log.warn, log.debug, log.progress);
  const environment = requireEnvironment(vault.environment);
  const patterns = validPatterns('--key-pattern', list(values['key-pattern']).length > 0 ? list(values['key-pattern']) : vault.patterns);
  if (patterns.length > 1) throw new UsageError('a token has one key pattern; pass one -k', 'mint one token per pattern');
  const credential = await vault.credential();
  if (credential.kind !== 'api-key') throw new UsageError('minting needs an API key (RWS_API_KEY or RWS_API_KEY_FILE), not a token');
  const { VaultClient } = await import('../../vault-client/index.js');
  const client = await VaultClient.create(vault.client);
  try {
    const minted = await client.mintToken(credential.value, {
      subject: validSubject(str(values.subject)) ?? `token-generate@${subjectUser(facts)}`,
      environment,
      keyPattern: patterns[0] ?? '*',
      ttlMinutes: count('--ttl', str(values.ttl), 5, 1),
      usageLimit: count('--usage-limit', str(values['usage-limit']), 1, 1),
    });
    if (values.json === true) {
      const { token, jti, expiresAt, keyPattern, usageLimit } = minted;
      context.stdout.write(`${JSON.stringify({ token, jti, expires_at: expiresAt, environment: minted.environment, key_pattern: keyPattern, usage_limit: usageLimit })}\n`);
    } else {
      context.stdout.write(`${minted.token}\n`);
    }
    log.info(`minted token ${minted.jti} for ${environment}/${minted.keyPattern}, ${minted.usageLimit} use(s), expires ${minted.expiresAt}`);
    return 0;
  } finally {
    await client.close();
  }
}

export async function tokenRevoke(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const vault = await resolveVaultContext(values, facts, log.warn, log.debug, log.progress);
  const credential = await vault.credential();
  if (credential.kind !== 'token') throw new UsageError('no token to revoke', 'set RWS_TOKEN or RWS_TOKEN_FILE, or pass --token-file');
  const { VaultClient } = await import('../../vault-client/index.js');
  const client = await VaultClient.create(vault.client);
  try {
    await client.revokeToken(credential.value);
    context.stdout.write(`token from ${credential.origin} revoked\n`);
    return 0;
  } finally {
    await client.close();
  }
}

export function requireEnvironment(environment: string | undefined): string {
  if (!environment) throw new UsageError('no vault environment given', 'pass -e ENVIRONMENT (or set RWS_ENVIRONMENT)');
  return validEnvironment(environment);
}
