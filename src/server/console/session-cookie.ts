// The console's session cookie and what is derived from its id. The id is 256 random bits; the
// database keeps only an HMAC of it under the server's pepper, and the CSRF token is another, so
// neither a reader or writer of the database nor a reader of a page can make the other half.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** Under TLS the `__Host-` prefix makes the browser refuse the cookie unless Secure, Path=/ and no Domain. */
const NAME_TLS = '__Host-rws_session';
const NAME_PLAIN = 'rws_session';
const ID_GRAMMAR = /^[A-Za-z0-9_-]{43}$/;

export const IDLE_MS = 15 * 60_000;
export const MAX_MS = 8 * 3600_000;

export function isTls(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket).encrypted === true;
}

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * What the database keeps of a session id: an HMAC under the server's pepper, as for API keys. A
 * plain SHA-256 kept a reader out, but not a writer: anyone who could write the database (a
 * PostgreSQL role, a restored dump) could insert the hash of an id of its own choosing for any
 * live admin key, and read keys, tokens and the trail over HTTP with that cookie.
 */
export function hashSessionId(pepper: Uint8Array, id: string): string {
  return createHmac('sha256', pepper).update(`rws-console-session:${id}`, 'utf8').digest('hex');
}

export function csrfToken(pepper: Uint8Array, id: string): string {
  return createHmac('sha256', pepper).update(`rws-console-csrf:${id}`, 'utf8').digest('base64url');
}

export function csrfMatches(pepper: Uint8Array, id: string, presented: string | undefined): boolean {
  const expected = Buffer.from(csrfToken(pepper, id), 'utf8');
  const given = Buffer.from(presented ?? '', 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * The session id of the request's cookie: undefined when there is none; `''` for one that is
 * not an id at all (refused like an unknown one, never looked up).
 */
export function sessionIdOf(req: IncomingMessage): string | undefined {
  const name = isTls(req) ? NAME_TLS : NAME_PLAIN;
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  let found: string | undefined;
  for (const part of header.split(';')) {
    const mark = part.indexOf('=');
    if (mark === -1 || part.slice(0, mark).trim() !== name) continue;
    // Two cookies of the name (one planted by a sibling host over plain HTTP): trust neither.
    if (found !== undefined) return '';
    found = part.slice(mark + 1).trim();
  }
  if (found === undefined) return undefined;
  return ID_GRAMMAR.test(found) ? found : '';
}

export function sessionCookie(req: IncomingMessage, id: string): string {
  return `${isTls(req) ? NAME_TLS : NAME_PLAIN}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${MAX_MS / 1000}${isTls(req) ? '; Secure' : ''}`;
}

export function clearedCookie(req: IncomingMessage): string {
  return `${isTls(req) ? NAME_TLS : NAME_PLAIN}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${isTls(req) ? '; Secure' : ''}`;
}

/** `scheme://host[:port]` of this request as the browser addressed it. */
export function ownOrigin(req: IncomingMessage): string | undefined {
  const host = req.headers.host;
  if (host === undefined || !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(host)) return undefined;
  return `${isTls(req) ? 'https' : 'http'}://${host.toLowerCase()}`;
}

/** A browser's request from a page of this server: `Origin` present and exactly this server's. */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  const own = ownOrigin(req);
  return own !== undefined && typeof origin === 'string' && origin.toLowerCase() === own;
}

/**
 * Whether the browser says the request came from a page of another origin (`Sec-Fetch-Site`:
 * `same-site` or `cross-site`). SameSite=Strict keeps the cookie from other sites only: another
 * port of this host, or a sibling subdomain, is the same site, and its images and fetches carry
 * the cookie. The console's own requests say `same-origin`, an address typed or bookmarked says
 * `none`; a client that sends no such header (curl, an older browser) is judged by the other checks.
 */
export function fetchedFromAnotherOrigin(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  return site !== undefined && site !== 'same-origin' && site !== 'none';
}
