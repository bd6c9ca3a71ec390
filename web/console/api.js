// Every request of the console: same-origin, never cached, the session's CSRF token on changes,
// and a 401 (the session ended) sends the page back to sign-in without showing stale data. Every
// string of an answer comes with its invisible characters made visible (visible.js): answers are
// only shown, and the ids and names sent back (key ids, jtis, environments, secret names) are
// within grammars that hold no such character.
import { visibleStrings } from './visible.js';
export const SESSION_PATH = '/console/api/session';
const SESSION_CHANGED = 'This browser signed in again in another tab, so nothing was changed here; try again.';
let csrf = null;
let onSignedOut = () => {};
let onActivity = () => {};
let onSessionChanged = () => {};
// How far the server's clock is ahead of this tab's, from the last answer's Date (whole seconds).
let serverAhead = 0;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `the server answered ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function setSession(session, handlers) {
  csrf = session ? session.csrf_token : null;
  if (handlers) ({ onSignedOut, onActivity, onSessionChanged = () => {} } = handlers);
}

/**
 * A change refused with 403 although this tab sent its CSRF token: when the browser has signed in
 * again in another tab since, its cookie now holds another session, whose token this tab has not
 * seen. Take that session on (refused changes change nothing), so that trying again works.
 */
async function sessionChanged(sent) {
  let current;
  try {
    current = await api('GET', SESSION_PATH, { background: true });
  } catch {
    return false;
  }
  if (!current?.signed_in || current.csrf_token === sent) return false;
  csrf = current.csrf_token;
  onSessionChanged(current);
  return true;
}

/** `background`: polling that must not count as activity (it does not keep the session open). */
export async function api(method, path, { json, background = false, bearer } = {}) {
  const headers = { accept: 'application/json' };
  if (json !== undefined) headers['content-type'] = 'application/json';
  const sent = method !== 'GET' && bearer === undefined ? csrf : null;
  if (sent) headers['x-csrf-token'] = sent;
  if (background) headers['x-rws-background'] = '1';
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), credentials: 'same-origin', cache: 'no-store', redirect: 'error' });
  const date = Date.parse(response.headers.get('date') ?? '');
  if (!Number.isNaN(date)) serverAhead = date - Date.now();
  const text = await response.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text, visibleStrings);
  } catch {
    body = undefined;
  }
  if (response.status === 401 && bearer === undefined) onSignedOut();
  if (response.status === 403 && sent && (await sessionChanged(sent))) throw new ApiError(403, 'RWS_SESSION_CHANGED', SESSION_CHANGED);
  if (!response.ok) throw new ApiError(response.status, body?.error?.code, body?.error?.message);
  if (!background) onActivity();
  return body;
}

/** A time the server gave (ms since the epoch), on this tab's clock: the two may differ. */
export function onLocalClock(serverTime) {
  return serverTime - serverAhead;
}

export const enc = encodeURIComponent;
