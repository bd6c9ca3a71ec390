// `login [--vault-url URL] [--profile NAME]`: reads an API key from stdin (a prompt that does not
// echo on a terminal), asks the vault who it is (GET /api/v1/auth/self), and only then stores it
// for that vault URL and profile. A refused key stores nothing. Never takes the key from argv.
import { LoginError, RwsError, UsageError } from '../../errors.js';
import { resolveVaultContext, type VaultContext } from '../../config/resolve.js';
import { checkApiKey } from '../../config/credentials.js';
import { readSecretLine } from '../secret-prompt.js';
import { redactCredentials } from '../output.js';
import type { CommandContext } from './context.js';
import { describeGrants, loginTarget } from './login-target.js';
import { printable } from '../../printable.js';

/** Variables that win over a stored key (credentials.ts): set, they would hide what login stores. */
const HIDING_VARIABLES = ['RWS_TOKEN', 'RWS_TOKEN_FILE', 'RWS_API_KEY', 'RWS_API_KEY_FILE'];

export async function login(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const vault = await resolveVaultContext(values, facts, log.warn, log.debug);
  const target = await loginTarget(vault, facts);
  const { VaultClient } = await import('../../vault-client/index.js');
  // Made before the key is read: a bad or insecure URL fails before anyone pastes a key.
  const client = await VaultClient.create(vault.client);
  try {
    const { readLogins, updateLogins } = await import('../../config/credential-store.js');
    // A store we would refuse to read is refused before the prompt, not after; an open directory
    // of ours is not, since the write narrows it.
    await readLogins(target.path, facts.uid, true);
    warnHidden(vault, facts.env, log.warn);
    const input = context.stdin?.();
    if (!input || !context.stderr) throw new UsageError('no standard input to read the API key from');
    const key = checkApiKey(await readSecretLine(input, context.stderr, `API key for ${target.url} (profile ${target.profile}): `), 'stdin');
    const info = await client.describeApiKey(key).catch((error: unknown) => {
      if (error instanceof RwsError && error.code === 'RWS_VAULT_AUTH') {
        throw new LoginError('RWS_LOGIN_REFUSED', `the vault at ${target.url} refused the API key: it is invalid, expired or revoked; nothing was stored`, "check that this is the whole key printed by 'secrets-server apikey create' for this vault");
      }
      throw error;
    });
    const entry = {
      vault_url: target.url,
      profile: target.profile,
      api_key: key,
      key_id: info.id,
      key_name: info.name,
      environments: info.environments,
      key_patterns: info.keyPatterns,
      expires_at: info.expiresAt,
      admin: info.admin,
      stored_at: new Date().toISOString(),
    };
    // Read again under the lock: another login may have stored a key meanwhile.
    await updateLogins(target.path, facts.uid, (logins) => [...logins.filter((other) => other.vault_url !== target.url || other.profile !== target.profile), entry]);
    // Redacted as every log line is: the name and patterns are the vault's words, and a hostile one can echo the key.
    context.stdout.write(`${redactCredentials(`logged in to ${target.url} as ${printable(info.name)} (${info.id}), profile ${target.profile}`)}\n`);
    context.stdout.write(`${redactCredentials(describeGrants(entry))}\n`);
    context.stdout.write(`key stored in ${target.path} (mode 0600)\n`);
    return 0;
  } finally {
    await client.close();
  }
}

function warnHidden(vault: VaultContext, env: Readonly<Record<string, string | undefined>>, warn: (code: string, message: string) => void): void {
  const set = HIDING_VARIABLES.filter((name) => env[name] !== undefined && env[name] !== '');
  if (vault.configHasApiKey) set.push(`credentials.api_key in ${vault.configPath}`);
  if (set.length === 0) return;
  warn('RWS_STORED_KEY_HIDDEN', `${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set: runs use ${set.length === 1 ? 'it' : 'them'}, not the key stored now, until unset`);
}
