// `check`: walks config → credential → server (TLS) → token mint → scope, one line per step
// with ✓/✗, stopping at the first failure. Never prints a value, a key or a token.
import { PatternUnmatchedError, toRwsError, UsageError } from '../../errors.js';
import { list, resolveVaultContext, str, subjectUser, type VaultContext, validPatterns, validSubject } from '../../config/resolve.js';
import type { Credential } from '../../config/credentials.js';
import type { VaultClient } from '../../vault-client/index.js';
import { redactCredentials } from '../output.js';
import type { CommandContext } from './context.js';
import { requireEnvironment } from './token.js';

export async function check(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const mark = await marks(context.color);
  // Redacted as every log line is: a hostile vault can name the API key it was sent in a refusal.
  const line = (ok: boolean, step: string, detail: string): void => {
    context.stdout.write(`${redactCredentials(`${ok ? mark.ok : mark.fail} ${step}: ${detail}`)}\n`);
  };
  const step = async <T>(name: string, run: () => Promise<[T, string]>): Promise<T> => {
    try {
      const [result, detail] = await run();
      line(true, name, detail);
      return result;
    } catch (error) {
      const failure = toRwsError(error);
      line(false, name, `${failure.message} [${failure.code}]${failure.hint ? ` (hint: ${failure.hint})` : ''}`);
      throw new CheckFailed(failure.exitCode);
    }
  };

  let client: VaultClient | undefined;
  try {
    const vault = await step('config', async (): Promise<[VaultContext, string]> => {
      const resolved = await resolveVaultContext(values, facts, log.warn, log.debug, log.progress);
      if (!resolved.client.baseUrl) throw new UsageError('no vault URL configured', 'pass --vault-url, set RWS_VAULT_URL or vault_url in the config file');
      const environment = requireEnvironment(resolved.environment);
      return [resolved, `${resolved.configPath ? `config file ${resolved.configPath}` : 'no config file'}; vault ${displayUrl(resolved.client.baseUrl)}; environment ${environment}`];
    });
    const environment = vault.environment!;
    const credential = await step('credential', async (): Promise<[Credential, string]> => {
      const found = await vault.credential();
      return [found, `${found.kind === 'token' ? 'token' : 'API key'} from ${found.origin} (format and file mode OK)`];
    });
    client = await step('server', async (): Promise<[VaultClient, string]> => {
      const { VaultClient: Client } = await import('../../vault-client/index.js');
      const created = await Client.create(vault.client);
      await created.health();
      return [created, `${displayUrl(vault.client.baseUrl)} answers${vault.client.baseUrl.startsWith('https:') ? ' over verified TLS' : ''}`];
    });
    // Every selector a run would mint for, each checked as the run checks it: a second -k
    // outside the key's grant fails the run, so it fails the check too.
    const given = validPatterns('--key-pattern', list(values['key-pattern']).length > 0 ? list(values['key-pattern']) : vault.patterns);
    const live = client;
    const scope = async (token: string, pattern: string, spent = ''): Promise<void> => {
      await step('scope', async (): Promise<[number, string]> => {
        // The pattern a run asks for, * too: a ready-made token scoped narrower lists its own names
        // without one, where the run's * is refused.
        const names = await live.listKeys(token, environment, pattern);
        // As a run judges it: a pattern of the selection that matches nothing fails the run.
        if (names.length === 0 && given.length > 0 && values['allow-empty'] !== true) throw new PatternUnmatchedError(pattern, list(values['key-pattern']).length > 0 ? undefined : vault.configPath);
        return [names.length, `${names.length} key(s) readable in ${environment} with ${pattern}${spent}`];
      });
    };
    if (credential.kind === 'token') {
      // The vault charges every listing to the token, and the run it was made for may need every
      // use it has: say so before spending one, and after.
      const patterns = given.length > 0 ? given : ['*'];
      const uses = patterns.length === 1 ? 'one use' : `${patterns.length} uses (one per pattern)`;
      await step('token', async (): Promise<[null, string]> => [null, `using the given token; checking its scope spends ${uses} of it`]);
      for (const pattern of patterns) await scope(credential.value, pattern, ' (one use of the token spent)');
      return 0;
    }
    for (const pattern of given.length > 0 ? given : ['*']) {
      const minted = await step('token', async () => {
        const token = await live.mintToken(credential.value, { subject: validSubject(str(values.subject)) ?? `check@${subjectUser(facts)}`, environment, keyPattern: pattern, ttlMinutes: 1, usageLimit: 1 });
        return [token, `minted ${token.jti} for ${environment}/${pattern}`];
      });
      try {
        await scope(minted.token, pattern);
      } finally {
        await live.revokeToken(minted.token).catch(() => undefined);
      }
    }
    return 0;
  } catch (error) {
    if (error instanceof CheckFailed) return error.exitCode;
    throw error;
  } finally {
    await client?.close();
  }
}

/** The URL as it may be shown: never with user:password, never an unparsable string verbatim. */
function displayUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  } catch {
    return '(a URL that does not parse)';
  }
}

class CheckFailed extends Error {
  constructor(readonly exitCode: number) {
    super('check failed');
  }
}

async function marks(color: boolean): Promise<{ ok: string; fail: string }> {
  if (!color) return { ok: '✓', fail: '✗' };
  const { Chalk } = await import('chalk');
  const chalk = new Chalk({ level: 1 });
  return { ok: chalk.green('✓'), fail: chalk.red('✗') };
}
