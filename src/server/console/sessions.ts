// Console sessions over HTTP: sign-in with an admin key (Bearer, so the 429 gate and the audit
// row are the API's), the session's cookie on every later request, sign-out. State-changing
// requests of a session need its CSRF token (header X-CSRF-Token) and a matching Origin: a form
// or fetch from another site gets 403 even if the browser sent the cookie. Any request, reads
// too, that the browser says came from another origin (Sec-Fetch-Site) gets 403 as well.
import type { IncomingMessage } from 'node:http';
import { authenticateApiKey } from '../auth/api-keys.js';
import type { Exchange, HandlerDeps, Reply } from '../http/handlers.js';
import { forbidden, HttpError } from '../http/http-error.js';
import { bearerCredential, readJsonBody } from '../http/request.js';
import { handlerMethod, methodNotAllowed } from '../http/methods.js';
import type { Route } from '../http/route.js';
import type { ApiKeyRecord, SessionRecord } from '../state/state-store.js';
import { clearedCookie, csrfMatches, csrfToken, fetchedFromAnotherOrigin, hashSessionId, IDLE_MS, MAX_MS, newSessionId, sameOrigin, sessionCookie, sessionIdOf } from './session-cookie.js';

const SAFE_METHODS = new Set(['GET', 'HEAD']);
export const SESSION_PATH = '/console/api/session';

export class ConsoleSessions {
  constructor(private readonly deps: HandlerDeps) {}

  route(method: string, path: string): Route | undefined {
    if (path !== SESSION_PATH) return undefined;
    const handlers: Record<string, Route['run']> = { POST: (x) => this.#signIn(x), GET: (x) => this.#describe(x), DELETE: (x) => this.#signOut(x) };
    const events = { POST: 'console.signin', GET: 'console.session', DELETE: 'console.signout' } as const;
    const chosen = handlerMethod(method);
    return {
      event: events[chosen as keyof typeof events],
      methods: Object.keys(handlers),
      run: handlers[chosen] ?? (async () => Promise.reject(methodNotAllowed(Object.keys(handlers)))),
    };
  }

  /** The admin key behind the request's cookie (see ConsoleHooks.sessionKey). */
  async sessionKey(x: Exchange): Promise<ApiKeyRecord | undefined> {
    const id = sessionIdOf(x.req);
    if (id === undefined) return undefined;
    const { key } = await this.#live(x, id);
    return key;
  }

  async holdsValidSession(req: IncomingMessage, now: Date): Promise<boolean> {
    const id = sessionIdOf(req);
    if (id === undefined || id === '') return false;
    return (await this.deps.state.checkSession({ idHash: hashSessionId(this.deps.pepper, id), now, idleSince: new Date(now.getTime() - IDLE_MS), touch: false })) !== undefined;
  }

  /** The live session of `id` and its key; 401 if there is none, 403 for a request from another origin or a cross-site change. */
  async #live(x: Exchange, id: string): Promise<{ session: SessionRecord; key: ApiKeyRecord }> {
    // Before the session is looked up: a neighbour's page must neither act (an audit row in the
    // admin's name, with filters of its choosing as the subject) nor keep the session open.
    if (fetchedFromAnotherOrigin(x.req)) throw forbidden('a console request from another origin is refused');
    // Polling by an open page (live audit) is not activity: it must not keep an unattended console signed in.
    const touch = x.req.headers['x-rws-background'] === undefined;
    const session = id === '' ? undefined : await this.deps.state.checkSession({ idHash: hashSessionId(this.deps.pepper, id), now: x.now, idleSince: new Date(x.now.getTime() - IDLE_MS), touch });
    if (session === undefined) throw signedOut(x.req);
    x.audit.api_key_id = session.api_key_id;
    const key = await this.deps.state.getApiKey(session.api_key_id, x.now);
    // The session's key is judged by the grants it was signed in with, never by a row changed since.
    if (key === undefined || !key.grants_intact) throw signedOut(x.req);
    if (!SAFE_METHODS.has(x.req.method ?? '')) {
      if (!sameOrigin(x.req)) throw forbidden('a console request from another origin is refused');
      const presented = x.req.headers['x-csrf-token'];
      if (!csrfMatches(this.deps.pepper, id, typeof presented === 'string' ? presented : undefined)) throw forbidden('this console request lacks the session\'s CSRF token');
    }
    return { session, key };
  }

  async #signIn(x: Exchange): Promise<Reply> {
    // A sign-in form posted from another site is refused before the key is even looked at.
    if (!sameOrigin(x.req)) throw forbidden('sign in from the console itself (the Origin header must be this server)');
    const key = await authenticateApiKey(this.deps.state, this.deps.pepper, bearerCredential(x.req), x.now);
    x.audit.api_key_id = key.id;
    if (!key.admin) throw forbidden('the console needs an admin API key (secrets-server apikey create --admin)');
    await readJsonBody(x.req, { optional: true });
    const id = newSessionId();
    const created = x.now.toISOString();
    const keyEnd = key.expires_at === null ? Number.POSITIVE_INFINITY : Date.parse(key.expires_at);
    const session: SessionRecord = { id_hash: hashSessionId(this.deps.pepper, id), api_key_id: key.id, created_at: created, last_seen_at: created, expires_at: new Date(Math.min(x.now.getTime() + MAX_MS, keyEnd)).toISOString() };
    // The cookie this browser held (a page whose first check failed, or a second sign-in with
    // another key) is replaced by the new one: its session ends in the commit that stores the new
    // one, whoever's it was.
    const held = sessionIdOf(x.req);
    const replaces = held ? hashSessionId(this.deps.pepper, held) : undefined;
    return {
      status: 201,
      body: this.#describeSession(session, key, id),
      headers: { 'set-cookie': sessionCookie(x.req, id) },
      effect: { kind: 'session.create', session, replaces },
    };
  }

  async #describe(x: Exchange): Promise<Reply> {
    const id = sessionIdOf(x.req);
    // The page asks on every load: no cookie is an answer (sign in), not a failed authentication,
    // and with no credential there is nothing to audit (as for the console's files); an audit row
    // each would let anyone fill the disk.
    if (id === undefined) return { status: 200, body: { signed_in: false }, unaudited: true };
    const { session, key } = await this.#live(x, id);
    return { status: 200, body: this.#describeSession(session, key, id) };
  }

  async #signOut(x: Exchange): Promise<Reply> {
    const id = sessionIdOf(x.req);
    if (id === undefined) throw signedOut(x.req);
    const { session } = await this.#live(x, id);
    await readJsonBody(x.req, { optional: true });
    return { status: 204, body: undefined, headers: { 'set-cookie': clearedCookie(x.req) }, effect: { kind: 'session.delete', idHash: session.id_hash } };
  }

  /** What the page needs: who, the CSRF token, and when the session ends (idle and at the latest). */
  #describeSession(session: SessionRecord, key: ApiKeyRecord, id: string): Record<string, unknown> {
    return {
      signed_in: true,
      api_key_id: key.id,
      name: key.name,
      csrf_token: csrfToken(this.deps.pepper, id),
      idle_timeout_seconds: IDLE_MS / 1000,
      idle_expires_at: new Date(Date.parse(session.last_seen_at) + IDLE_MS).toISOString(),
      expires_at: session.expires_at,
    };
  }
}

/**
 * 401 that also drops the browser's cookie, so a dead session is not sent again and again. Its
 * challenge is Bearer, as every 401 must carry one (RFC 9110 §15.5.2) and these routes take a
 * Bearer key too; a browser asks its user nothing for that scheme.
 */
function signedOut(req: IncomingMessage): HttpError {
  return new HttpError(401, 'RWS_AUTH_FAILED', 'the console session has ended; sign in again', { 'set-cookie': clearedCookie(req), 'www-authenticate': 'Bearer' });
}
