// The one error type the HTTP layer answers with: a status, a stable code and a public message.
// Anything else thrown inside a handler becomes a plain 500 with nothing internal in it.
import { RwsError } from '../../errors.js';
import { redactCredentials } from '../../credential-shapes.js';

export type HttpErrorCode =
  | 'RWS_BAD_REQUEST'
  | 'RWS_NAME_INVALID'
  | 'RWS_AUTH_FAILED'
  | 'RWS_TOKEN_EXPIRED'
  | 'RWS_TOKEN_REVOKED'
  | 'RWS_TOKEN_EXHAUSTED'
  | 'RWS_FORBIDDEN'
  | 'RWS_NOT_FOUND'
  | 'RWS_METHOD_NOT_ALLOWED'
  | 'RWS_REQUEST_TIMEOUT'
  | 'RWS_BODY_TOO_LARGE'
  | 'RWS_HEADERS_TOO_LARGE'
  | 'RWS_UNSUPPORTED_MEDIA_TYPE'
  | 'RWS_RATE_LIMITED'
  | 'RWS_SERVER_BUSY'
  | 'RWS_CLIENT_CLOSED'
  | 'RWS_STORE_INVALID'
  | 'RWS_AUDIT_UNAVAILABLE'
  | 'RWS_STATE_UNAVAILABLE'
  | 'RWS_INTERNAL';

export class HttpError extends RwsError {
  constructor(
    readonly status: number,
    code: HttpErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(code, message);
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, 'RWS_BAD_REQUEST', message);
/**
 * The 401 challenges of RFC 6750 §3: a credential that was sent and refused (unknown, malformed,
 * expired, revoked, spent) is `invalid_token`, which tells an OAuth-minded client to get a new one
 * rather than retry; a request that sent none gets the bare scheme, without an error code.
 */
export const REFUSED_CREDENTIAL = { 'www-authenticate': 'Bearer error="invalid_token"' } as const;
export const NO_CREDENTIAL = { 'www-authenticate': 'Bearer' } as const;

/** A credential sent and refused. */
export const unauthorized = (message = 'missing or invalid credential'): HttpError => new HttpError(401, 'RWS_AUTH_FAILED', message, REFUSED_CREDENTIAL);
export const forbidden = (message: string): HttpError => new HttpError(403, 'RWS_FORBIDDEN', message);
export const notFound = (message: string): HttpError => new HttpError(404, 'RWS_NOT_FOUND', message);

/**
 * On a 503 for want of the state database or the audit log: nothing was done, so the request may
 * be sent again as it is (RFC 9110 §10.2.3); a second is the least an outage takes, and a client
 * backs off from there.
 */
export const RETRY_SOON: Readonly<Record<string, string>> = { 'retry-after': '1' };

/**
 * Errors from below the HTTP layer that clients may learn about: their code becomes a fixed
 * public message (their own message may name files), everything else a plain 500.
 */
const PUBLIC_FAILURES: Readonly<Record<string, readonly [number, HttpErrorCode, string]>> = {
  RWS_AUDIT_UNAVAILABLE: [503, 'RWS_AUDIT_UNAVAILABLE', 'the audit log could not be written; nothing was served'],
  RWS_STATE_UNAVAILABLE: [503, 'RWS_STATE_UNAVAILABLE', 'the token state could not be recorded; nothing was served'],
  RWS_STORE_INVALID: [500, 'RWS_STORE_INVALID', 'the secrets store failed verification and is not served'],
  RWS_SOPS_INVALID: [500, 'RWS_STORE_INVALID', 'the secrets file failed verification and is not served'],
  RWS_SOPS_MAC_MISMATCH: [500, 'RWS_STORE_INVALID', 'the secrets file failed verification and is not served'],
  RWS_SOPS_DECRYPT_FAILED: [500, 'RWS_STORE_INVALID', 'the secrets file failed verification and is not served'],
  RWS_SOPS_NO_IDENTITY: [500, 'RWS_STORE_INVALID', 'the secrets file is not encrypted for this server'],
  // A store file the server may not read (another user's, 0600): the log says whose.
  RWS_FILE_ACCESS: [500, 'RWS_STORE_INVALID', 'the secrets file cannot be read by the server and is not served'],
};

/**
 * The answer for an error: known errors keep their code and message, others say nothing. A
 * message may quote a name the request gave (`environment prod has no secret NAME`, an unexpected
 * field): an API key or a token pasted there is not sent back, for proxies and logs to keep.
 */
export function errorResponse(error: unknown): { status: number; headers: Record<string, string>; body: unknown } {
  if (error instanceof HttpError) {
    return { status: error.status, headers: { ...error.headers }, body: { error: { code: error.code, message: redactCredentials(error.message) } } };
  }
  const known = error instanceof RwsError ? PUBLIC_FAILURES[error.code] : undefined;
  if (known !== undefined) return { status: known[0], headers: known[0] === 503 ? { ...RETRY_SOON } : {}, body: { error: { code: known[1], message: known[2] } } };
  return { status: 500, headers: {}, body: { error: { code: 'RWS_INTERNAL', message: 'internal error' } } };
}
