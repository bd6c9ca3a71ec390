// Failures below HTTP (connect, TLS, timeouts, broken connections), turned into VaultErrors.
// Only error codes are used: a system error's message may name addresses we did not choose to
// print, and a parser error's message may quote the bytes the server sent.
import { InternalError } from '../errors.js';
import { badResponse, VaultError } from './errors.js';

export type Phase = 'request' | 'body';

export interface NetworkFailure {
  kind: 'unreachable' | 'tls' | 'timeout' | 'protocol';
  code: string;
  phase: Phase;
  /** Connection errors before an answer started, and connect timeouts: safe to try again. */
  retryable: boolean;
}

const CONNECTION_FAILURES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed while sending',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed temporarily',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EHOSTDOWN: 'host down',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CLOSED: 'connection closed',
};

const TLS_FAILURES: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'the certificate chain ends in an untrusted self-signed CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not signed by a trusted CA',
  UNABLE_TO_GET_ISSUER_CERT: 'the server certificate is not signed by a trusted CA',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  CERT_NOT_YET_VALID: 'the server certificate is not valid yet',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate does not name this host',
};

/** The code of the error our own deadline for a whole answer aborts a request with (http.ts). */
export const ANSWER_DEADLINE = 'RWS_ANSWER_DEADLINE';

const TIMEOUT_PHASES: Readonly<Record<string, string>> = {
  UND_ERR_CONNECT_TIMEOUT: 'accept the connection',
  UND_ERR_HEADERS_TIMEOUT: 'start its answer',
  UND_ERR_BODY_TIMEOUT: 'send the rest of its answer',
  [ANSWER_DEADLINE]: 'finish its answer',
};

const CODE_GRAMMAR = /^[A-Z0-9_]{1,64}$/;
/** Ours, for undici's refusal of a 1xx answer it was not waiting for. */
const BAD_INFORMATIONAL = 'RWS_UNEXPECTED_1XX';

function errorCode(error: unknown): string | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    // An unasked-for 100 Continue or protocol upgrade: undici drops the connection with a
    // SocketError in its own words (client-h1.js). The server answered, wrongly; it was not
    // unreachable, so this is neither retried (the request was served) nor a reason for --fallback.
    if (code === 'UND_ERR_SOCKET' && (e.message === 'bad response' || e.message === 'bad upgrade')) return BAD_INFORMATIONAL;
    if (typeof code === 'string' && CODE_GRAMMAR.test(code) && code !== 'UND_ERR') return code;
    // undici's HTTPParserError has no code when llhttp gave none (e.g. an answer not starting with HTTP/).
    if (e.name === 'HTTPParserError') return 'HPE_INVALID_RESPONSE';
  }
  return undefined;
}

function isTlsCode(code: string): boolean {
  return code in TLS_FAILURES || /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_|CERT_|UNABLE_TO_)/.test(code) || code === 'EPROTO';
}

/** Classifies a thrown error, or returns undefined when it is not a network failure at all. */
export function classifyNetworkError(error: unknown, phase: Phase): NetworkFailure | undefined {
  const code = errorCode(error);
  if (code === undefined) return undefined;
  if (code in TIMEOUT_PHASES) return { kind: 'timeout', code, phase, retryable: code === 'UND_ERR_CONNECT_TIMEOUT' };
  if (isTlsCode(code)) return { kind: 'tls', code, phase, retryable: false };
  if (code in CONNECTION_FAILURES) return { kind: 'unreachable', code, phase, retryable: phase === 'request' };
  if (code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_HEADERS_OVERFLOW' || code === BAD_INFORMATIONAL) {
    return { kind: 'protocol', code, phase, retryable: false };
  }
  return undefined;
}

export function networkError(failure: NetworkFailure | undefined, cause: unknown, origin: string, attempts: number, limits: { timeoutMs: number; deadlineMs: number }): Error {
  const { timeoutMs, deadlineMs } = limits;
  if (failure === undefined) return new InternalError(cause);
  const { code } = failure;
  const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  switch (failure.kind) {
    case 'timeout':
      return new VaultError(
        'RWS_VAULT_TIMEOUT',
        code === ANSWER_DEADLINE
          ? `the vault at ${origin} did not ${TIMEOUT_PHASES[code]} within ${deadlineMs / 1000} s (--timeout ${timeoutMs / 1000} s for each of connect, headers and body, and a second more; ${tries})`
          : `the vault at ${origin} did not ${TIMEOUT_PHASES[code]} within ${timeoutMs / 1000} s (--timeout; ${tries})`,
        'raise --timeout SECONDS (default 10) or check the server and the network in between',
        { attempts },
      );
    case 'tls':
      return new VaultError(
        'RWS_VAULT_TLS',
        `TLS with the vault at ${origin} failed: ${TLS_FAILURES[code] ?? 'handshake failed'} (${code})`,
        'for a private CA pass --ca-file or set RWS_CA_FILE; check the certificate names this host, is current, and that the server speaks HTTPS',
        { attempts },
      );
    case 'protocol':
      return badResponse(origin, `the answer is not valid HTTP (${code})`);
    case 'unreachable':
      if (failure.phase === 'body') {
        return new VaultError(
          'RWS_VAULT_UNREACHABLE',
          `the connection to the vault at ${origin} broke while reading its answer: ${CONNECTION_FAILURES[code]} (${code})`,
          'try again; if it keeps happening, check the server and any proxy in between',
          { attempts },
        );
      }
      return new VaultError(
        'RWS_VAULT_UNREACHABLE',
        `cannot reach the vault at ${origin}: ${CONNECTION_FAILURES[code]} (${code}; ${tries})`,
        'check --vault-url / RWS_VAULT_URL, the network, and that the server is running',
        { attempts },
      );
  }
}
