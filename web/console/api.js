// Every request of the console: same-origin, never cached, the session's CSRF token on changes,
// and a 401 (the session ended) sends the page back to sign-in without showing stale data.
let csrf = null;
let onSignedOut = () => {};
let onActivity = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `the server answered ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function setSession(session, handlers) {
  csrf = session ? session.csrf_token : null;
  if (handlers) ({ onSignedOut, onActivity } = handlers);
}

/** `background`: polling that must not count as activity (it does not keep the session open). */
export async function api(method, path, { json, background = false, bearer } = {}) {
  const headers = { accept: 'application/json' };
  if (json !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  if (background) headers['x-rws-background'] = '1';
  if (bearer !== undefined) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json), credentials: 'same-origin', cache: 'no-store', redirect: 'error' });
  const text = await response.text();
  let body;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (response.status === 401 && bearer === undefined) onSignedOut();
  if (!response.ok) throw new ApiError(response.status, body?.error?.code, body?.error?.message);
  if (!background) onActivity();
  return body;
}

export const enc = encodeURIComponent;
