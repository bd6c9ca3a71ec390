// The wrapper's own credentials: an API key (RWS_API_KEY, RWS_API_KEY_FILE, the config file, or
// the key `login` stored) or a token minted elsewhere (--token-file, RWS_TOKEN, RWS_TOKEN_FILE,
// --token). Never from a flag for API keys: argv is world-readable in /proc. Files holding them must be private.
import { CredentialError } from '../errors.js';
import { isExposed, modeText, ReadProblem, readLocalFile } from '../local-file.js';

export type Credential = { kind: 'api-key'; value: string; origin: string } | { kind: 'token'; value: string; origin: string };

const API_KEY = /^rws_sk_[0-9a-f]{32}$/;
const COMPACT_JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_CREDENTIAL_BYTES = 8192;

export function checkApiKey(value: string, origin: string): string {
  const key = value.trim();
  if (!API_KEY.test(key)) {
    // Never echo the value: say what was expected and how long the given one was.
    throw new CredentialError('RWS_CREDENTIAL_INVALID', `the API key from ${origin} is malformed (${key.length} characters)`, "expected 'rws_sk_' followed by 32 lowercase hex characters, as printed by 'secrets-server apikey create'");
  }
  return key;
}

export function checkToken(value: string, origin: string): string {
  const token = value.trim();
  if (!COMPACT_JWT.test(token) || token.length >= 4096) {
    throw new CredentialError('RWS_CREDENTIAL_INVALID', `the token from ${origin} is malformed (${token.length} characters)`, "expected a JWT (three base64url parts separated by dots), as printed by 'run-with-secrets token generate'");
  }
  return token;
}

/** Reads a credential file, refusing one that group or others can read (like ssh does). */
export async function readCredentialFile(path: string, what: string): Promise<string> {
  let file;
  try {
    file = await readLocalFile(path, { maxBytes: MAX_CREDENTIAL_BYTES, allowPipe: false });
  } catch (error) {
    if (!(error instanceof ReadProblem)) throw error;
    const code = error.kind === 'unreadable' ? 'RWS_CREDENTIAL_UNREADABLE' : 'RWS_CREDENTIAL_INVALID';
    throw new CredentialError(code, `cannot read the ${what} file ${path}: ${error.reason}`, 'check the path');
  }
  if (isExposed(file.mode)) {
    throw new CredentialError('RWS_CREDENTIAL_FILE_MODE', `the ${what} file ${path} is readable by group or others (mode ${modeText(file.mode)})`, `chmod 600 ${path}; in Kubernetes, where fsGroup makes secret files 0440, set ${what === 'token' ? 'RWS_TOKEN' : 'RWS_API_KEY'} from a secretKeyRef instead`);
  }
  return file.text;
}

export interface CredentialSources {
  tokenFileFlag: string | undefined;
  tokenFlag: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  configApiKey: { value: string; path: string } | undefined;
  /** The key `login` stored for this vault and profile: asked for last, so the store is read only when nothing else is set. */
  storedApiKey?: () => Promise<{ value: string; origin: string } | undefined>;
  warn(code: string, message: string): void;
}

/**
 * Precedence: flags, then environment, then config file, then the key `login` stored; a token
 * (minted elsewhere) before an API key at the same level. Returns undefined when nothing is configured.
 */
export async function resolveCredential(sources: CredentialSources): Promise<Credential | undefined> {
  const { env } = sources;
  if (sources.tokenFileFlag !== undefined) {
    return token(await readCredentialFile(sources.tokenFileFlag, 'token'), `--token-file ${sources.tokenFileFlag}`);
  }
  if (sources.tokenFlag !== undefined) {
    sources.warn('RWS_TOKEN_IN_ARGV', 'a token passed with --token is visible to other users in the process list; use RWS_TOKEN or --token-file');
    return token(sources.tokenFlag, '--token');
  }
  if (env.RWS_TOKEN !== undefined && env.RWS_TOKEN !== '') return token(env.RWS_TOKEN, 'RWS_TOKEN');
  if (env.RWS_TOKEN_FILE) return token(await readCredentialFile(env.RWS_TOKEN_FILE, 'token'), `RWS_TOKEN_FILE ${env.RWS_TOKEN_FILE}`);
  if (env.RWS_API_KEY !== undefined && env.RWS_API_KEY !== '') return apiKey(env.RWS_API_KEY, 'RWS_API_KEY');
  if (env.RWS_API_KEY_FILE) return apiKey(await readCredentialFile(env.RWS_API_KEY_FILE, 'API key'), `RWS_API_KEY_FILE ${env.RWS_API_KEY_FILE}`);
  if (sources.configApiKey) return apiKey(sources.configApiKey.value, `the config file ${sources.configApiKey.path}`);
  const stored = await sources.storedApiKey?.();
  if (stored) return apiKey(stored.value, stored.origin);
  return undefined;
}

function token(value: string, origin: string): Credential {
  return { kind: 'token', value: checkToken(value, origin), origin };
}

function apiKey(value: string, origin: string): Credential {
  return { kind: 'api-key', value: checkApiKey(value, origin), origin };
}

export function missingCredential(vaultKnown = false, profile?: string): CredentialError {
  const login = vaultKnown ? `run-with-secrets login${profile === undefined ? '' : ` --profile ${profile}`}, or set ` : 'set ';
  return new CredentialError('RWS_CREDENTIAL_MISSING', 'no credential for the vault is set', `${login}RWS_API_KEY or RWS_API_KEY_FILE (or credentials.api_key in the config file), or RWS_TOKEN / RWS_TOKEN_FILE / --token-file`);
}
