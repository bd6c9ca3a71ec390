// What a refusal means for the call that got it: each status becomes one error that names the
// environment, keys or pattern concerned and says what to do next.
import { badResponse, VaultError, type VaultErrorDetails } from './errors.js';
import type { VaultResponse } from './http.js';

export interface CallContext {
  /** What was being done, e.g. "minting a token". */
  action: string;
  credential: 'API key' | 'token' | undefined;
  environment?: string;
  keys?: readonly string[];
  pattern?: string;
  /** The request asked the server to hold it (`?wait=`), which has a 429 of its own. */
  held?: boolean;
}

const SHOWN_KEYS = 5;

function listKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, SHOWN_KEYS).join(', ');
  return keys.length > SHOWN_KEYS ? `${shown} and ${keys.length - SHOWN_KEYS} more` : shown;
}

/** "environment prod, keys A, B" / "environment prod, pattern SERVICE_*". */
function describeScope(context: CallContext): string {
  const parts: string[] = [];
  if (context.environment !== undefined) parts.push(`environment ${context.environment}`);
  if (context.keys !== undefined) parts.push(`${context.keys.length === 1 ? 'key' : 'keys'} ${listKeys(context.keys)}`);
  if (context.pattern !== undefined) parts.push(`pattern ${context.pattern}`);
  return parts.length === 0 ? 'this request' : parts.join(', ');
}

/**
 * `base` is the vault URL as given (origin and path prefix): a wrong prefix is what a 404 "no
 * such route" means, and the origin alone would hide it.
 */
export function statusError(response: VaultResponse, context: CallContext, origin: string, base: string = origin): VaultError {
  const { status, serverCode, attempts } = response;
  const details = { status, serverCode, attempts, credential: context.credential };
  const server = serverCode === undefined ? '' : ` (${serverCode})`;
  const credential = context.credential ?? 'request';
  if (status === 401) {
    const hint =
      context.credential === 'token'
        ? 'a token run-with-secrets minted from the API key: run again (an admin may have revoked it); one given with RWS_TOKEN or --token-file: get a new one (run-with-secrets token generate)'
        : // The key may come from any of four places; naming two sent a user of `login` to variables they never set.
          'get a new API key (secrets-server apikey create) and put it where this one came from: RWS_API_KEY, RWS_API_KEY_FILE, credentials.api_key, or run-with-secrets login (run-with-secrets check names which)';
    const what = context.credential === 'token' ? 'invalid, expired, revoked or used up' : 'invalid, expired or revoked';
    return new VaultError('RWS_VAULT_AUTH', `the vault at ${origin} refused the ${credential} while ${context.action}: it is ${what}${server}`, hint, details);
  }
  if (status === 403) {
    const scope = describeScope(context);
    const refusal = response.refusal;
    if (refusal?.kind === 'grants') {
      const granted = `it grants environment${refusal.environments.length === 1 ? '' : 's'} ${refusal.environments.join(', ')} with key pattern${refusal.patterns.length === 1 ? '' : 's'} ${refusal.patterns.join(', ')}`;
      const typo = context.environment !== undefined && !refusal.environments.includes(context.environment);
      const hint = typo
        ? `check -e (the key grants ${refusal.environments.join(', ')}), or ask the vault admin for an API key granting environment ${context.environment}`
        : `narrow -k/--key to within ${refusal.patterns.join(', ')}, or ask the vault admin for an API key granting ${scope}`;
      return new VaultError('RWS_VAULT_FORBIDDEN', `the ${credential} does not grant ${scope}${server}: ${granted}`, hint, details);
    }
    const hint =
      context.credential === 'token'
        ? `use a token scoped to ${scope}, or narrow -e/-k/--key to what the token covers`
        : `ask the vault admin for an API key granting ${scope}, or narrow -e/-k/--key to what the key grants`;
    return new VaultError('RWS_VAULT_FORBIDDEN', `the ${credential} does not grant ${scope}${server}`, hint, details);
  }
  if (status === 404) {
    const refusal = response.refusal;
    // No error code at all: not a secrets-server's answer (another web server at that URL).
    if (refusal?.kind === 'no-route' || serverCode === undefined) return noRouteError(base, server, details);
    if (refusal?.kind === 'no-environment') {
      return new VaultError('RWS_VAULT_NOT_FOUND', `the vault at ${origin} has no environment ${refusal.environment}${server}`, 'check -e: the environment does not exist on this vault', details);
    }
    if (refusal?.kind === 'no-key') {
      return new VaultError(
        'RWS_VAULT_NOT_FOUND',
        `environment ${refusal.environment} of the vault at ${origin} has no key ${refusal.key}${server}`,
        `check --key ${refusal.key}; run-with-secrets keys -e ${refusal.environment} lists the names in scope`,
        details,
      );
    }
    const missing =
      context.keys === undefined
        ? `has no environment ${context.environment ?? '(none named)'}`
        : `has no environment ${context.environment ?? '(none named)'}, or no ${context.keys.length === 1 ? 'key' : 'keys'} ${listKeys(context.keys)} in it`;
    return new VaultError(
      'RWS_VAULT_NOT_FOUND',
      `the vault at ${origin} ${missing}${server}`,
      'check -e and -k/--key; run-with-secrets keys -e ENV lists the names in scope',
      details,
    );
  }
  if (status === 429) {
    // A held batch gets the same code when its API key already has the most requests waiting
    // that the server allows; a valid token (a watch's is freshly minted) is never refused for
    // failed authentications, so that is by far the likelier reason, and the one to name first.
    if (context.held) {
      return new VaultError(
        'RWS_VAULT_RATE_LIMITED',
        `the vault at ${origin} refused to hold the refresh: this API key already has as many requests waiting as the server allows (secrets-server serve --max-long-polls-per-key), or this address made too many failed authentications${server}`,
        'give each group of watchers its own API key, or raise --max-long-polls-per-key on the server',
        details,
      );
    }
    return new VaultError(
      'RWS_VAULT_RATE_LIMITED',
      `the vault at ${origin} is refusing this address after too many failed authentications${server}`,
      'wait a minute, then try again with a valid credential',
      details,
    );
  }
  if (status >= 400 && status < 500) {
    return new VaultError(
      'RWS_VAULT_BAD_REQUEST',
      `the vault at ${origin} rejected the request as malformed (${status}) while ${context.action}${server}`,
      'check the environment name, key names and patterns; if they are right, the server may be another version',
      details,
    );
  }
  if (status >= 500) {
    return new VaultError(
      'RWS_VAULT_UNAVAILABLE',
      `the vault at ${origin} failed with ${status} while ${context.action} (${attempts === 1 ? '1 attempt' : `${attempts} attempts`})${server}`,
      'try again later or raise --retries; the server log says why',
      details,
    );
  }
  return badResponse(origin, `unexpected status ${status} (redirects are not followed)`);
}

export const VAULT_URL_HINT = 'check --vault-url / RWS_VAULT_URL: the address secrets-server serve printed, with a path only where a proxy serves the API under one';

export function noRouteError(base: string, server: string, details: VaultErrorDetails): VaultError {
  return new VaultError('RWS_VAULT_NOT_FOUND', `the server at ${base} does not serve the vault API there${server}: the vault URL is wrong`, VAULT_URL_HINT, details);
}
