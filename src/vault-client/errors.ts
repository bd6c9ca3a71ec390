// Every failure of a vault call is a VaultError with a stable code, one line saying what happened
// and a hint saying what to do next. Messages name the URL origin, environments, key names and
// patterns; never a token, an API key, a secret value or a response body (not even the server's
// own error message: only its code, and only when it looks like a code).
import { RwsError } from '../errors.js';

export type VaultErrorCode =
  | 'RWS_VAULT_AUTH'
  | 'RWS_VAULT_FORBIDDEN'
  | 'RWS_VAULT_NOT_FOUND'
  | 'RWS_VAULT_RATE_LIMITED'
  | 'RWS_VAULT_BAD_REQUEST'
  | 'RWS_VAULT_UNAVAILABLE'
  | 'RWS_VAULT_UNREACHABLE'
  | 'RWS_VAULT_TLS'
  | 'RWS_VAULT_TIMEOUT'
  | 'RWS_VAULT_BAD_RESPONSE'
  | 'RWS_VAULT_INSECURE_URL'
  | 'RWS_VAULT_INVALID_URL';

export interface VaultErrorDetails {
  /** The HTTP status, when the server answered. */
  status?: number;
  /** The server's `error.code`, when it matched SERVER_CODE_GRAMMAR. */
  serverCode?: string;
  /** How many attempts were made before giving up. */
  attempts?: number;
  /**
   * What the refused request carried: a 401 to a token the run minted for itself speaks of that
   * token (revoked by an admin, expired), not of the API key that minted it.
   */
  credential?: 'API key' | 'token';
}

export class VaultError extends RwsError {
  declare readonly code: VaultErrorCode;
  readonly status: number | undefined;
  readonly serverCode: string | undefined;
  readonly attempts: number | undefined;
  readonly credential: 'API key' | 'token' | undefined;

  constructor(code: VaultErrorCode, message: string, hint: string, details: VaultErrorDetails = {}) {
    super(code, message, { hint });
    this.status = details.status;
    this.serverCode = details.serverCode;
    this.attempts = details.attempts;
    this.credential = details.credential;
  }
}

/** A server error code we are willing to repeat: anything else might carry data. */
const SERVER_CODE_GRAMMAR = /^[A-Z0-9_]{1,64}$/;

export function safeServerCode(value: unknown): string | undefined {
  return typeof value === 'string' && SERVER_CODE_GRAMMAR.test(value) ? value : undefined;
}

export function badResponse(origin: string, what: string): VaultError {
  return new VaultError(
    'RWS_VAULT_BAD_RESPONSE',
    `the vault at ${origin} sent a malformed response: ${what}`,
    'check that --vault-url points at a secrets-server of a matching version',
  );
}
