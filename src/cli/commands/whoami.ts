// `whoami`: which API key a run here would use (same precedence as a run), and what the vault says
// of it: id, name, grants, expiry; never the key. When the vault cannot be asked, a stored key is
// described as login stored it, and the output says plainly that the vault was not asked.
import { toRwsError, UsageError } from '../../errors.js';
import { resolveVaultContext } from '../../config/resolve.js';
import { redactCredentials } from '../output.js';
import type { CommandContext } from './context.js';
import { describeGrants, loginTarget } from './login-target.js';
import { printable } from '../../printable.js';

/** The vault could not be asked (as opposed to: it answered no). */
const UNREACHED = new Set(['RWS_VAULT_UNREACHABLE', 'RWS_VAULT_TIMEOUT', 'RWS_VAULT_UNAVAILABLE', 'RWS_VAULT_TLS']);

export async function whoami(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const vault = await resolveVaultContext(values, facts, log.warn, log.debug, log.progress);
  const target = await loginTarget(vault, facts);
  const credential = await vault.credential();
  if (credential.kind !== 'api-key') throw new UsageError(`whoami describes API keys; the credential in use is a token from ${credential.origin}`, 'unset RWS_TOKEN / RWS_TOKEN_FILE to see the API key');
  const { findLogin, readLogins } = await import('../../config/credential-store.js');
  const candidate = findLogin(await readLogins(target.path, facts.uid), target.url, target.profile);
  const stored = candidate?.api_key === credential.value ? candidate : undefined;
  // Redacted as every log line is: the name and patterns are the vault's words, and a hostile one can echo the key.
  const out = (line: string): void => void context.stdout.write(`${redactCredentials(line)}\n`);
  out(`vault: ${target.url} (profile ${target.profile})`);
  out(`credential: API key from ${credential.origin}`);
  const { VaultClient } = await import('../../vault-client/index.js');
  const client = await VaultClient.create(vault.client);
  try {
    const info = await client.describeApiKey(credential.value);
    out(`key: ${printable(info.name)} (${info.id})`);
    out(describeGrants({ environments: info.environments, key_patterns: info.keyPatterns, expires_at: info.expiresAt, admin: info.admin }));
    out('checked with the vault just now');
    return 0;
  } catch (error) {
    const failure = toRwsError(error);
    if (!UNREACHED.has(failure.code) || stored === undefined) throw failure;
    out(`key: ${printable(stored.key_name)} (${stored.key_id})`);
    out(describeGrants(stored));
    out(`not checked: the vault could not be asked (${failure.code}); this is what login stored at ${stored.stored_at}`);
    log.warn(failure.code, failure.message);
    return 0;
  } finally {
    await client.close();
  }
}
