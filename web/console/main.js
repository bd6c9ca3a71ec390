// The console's shell: sign-in, the session's expiry banner, navigation and sign-out. Data is
// fetched only while signed in, and sign-out leaves the page for a fresh one, so the back button
// finds nothing to show.
import { render } from 'preact';
import { useEffect, useLayoutEffect, useState } from 'preact/hooks';
import { api, ApiError, onLocalClock, SESSION_PATH as SESSION, setSession } from './api.js';
import { html } from './html.js';
import { PAGES, href, useRoute } from './route.js';
import { AuditPage } from './pages/audit.js';
import { KeysPage } from './pages/keys.js';
import { SecretsPage } from './pages/secrets.js';
import { StatusPage } from './pages/status.js';
import { TokensPage } from './pages/tokens.js';
import { Problem } from './widgets.js';

const WARN_MS = 2 * 60_000;
const SIGNED_OUT_PAGE = '/console/?signed-out';
const SESSION_ENDED = 'Your session has ended; sign in again.';

function SignIn({ onSignedIn, notice }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // Before the first paint, so that keys typed as soon as the field shows land in it.
  useLayoutEffect(() => document.getElementById('admin-key')?.focus(), []);
  const submit = async (event) => {
    event.preventDefault();
    const field = event.currentTarget.elements.namedItem('admin-key');
    const key = field.value.trim();
    setBusy(true);
    setError(null);
    try {
      const session = await api('POST', SESSION, { bearer: key });
      field.value = '';
      onSignedIn(session);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin" id="main">
    <h1>secrets-server console</h1>
    ${notice && html`<p class="notice" role="status">${notice}</p>`}
    <form onSubmit=${submit}>
      <label for="admin-key">Admin API key</label>
      <input id="admin-key" name="admin-key" type="password" autocomplete="off" spellcheck=${false} required pattern="rws_sk_[0-9a-f]{32}" placeholder="rws_sk_…" aria-describedby="admin-key-help" />
      <p id="admin-key-help" class="help">Made on the server's host with <code>secrets-server apikey create --name ops --admin</code>. It is sent once to open a session and not kept by this page.</p>
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>
    <${Problem} error=${error} />
  </main>`;
}

function ExpiryBanner({ endsAt, hardEnd, onStay, onEnded }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const left = endsAt - now;
  useEffect(() => {
    if (left <= 0) onEnded();
  }, [left <= 0]);
  if (left > WARN_MS) return null;
  const seconds = Math.max(0, Math.ceil(left / 1000));
  const text = `Your session ends in ${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}.`;
  const byIdle = endsAt < hardEnd;
  return html`<div class="banner" role="alert">
    <span>${text} ${byIdle ? 'Any action keeps it open.' : 'Sessions last 8 hours at most; sign in again then.'}</span>
    ${byIdle && html`<button type="button" onClick=${onStay}>Stay signed in</button>`}
  </div>`;
}

function Page({ route, session }) {
  const props = { params: route.params, session };
  switch (route.page) {
    case 'tokens':
      return html`<${TokensPage} ...${props} />`;
    case 'audit':
      return html`<${AuditPage} ...${props} />`;
    case 'secrets':
      return html`<${SecretsPage} ...${props} />`;
    case 'status':
      return html`<${StatusPage} ...${props} />`;
    default:
      return html`<${KeysPage} ...${props} />`;
  }
}

function App() {
  const [session, setSessionState] = useState(undefined);
  const [activity, setActivity] = useState(Date.now());
  const [signOutError, setSignOutError] = useState(null);
  const [notice, setNotice] = useState(location.search.includes('signed-out') ? 'You have signed out.' : null);
  const route = useRoute();

  const signedOut = (message) => {
    setSession(null);
    setSessionState(null);
    setNotice(message);
  };
  // The server's session, with its idle end moved onto this tab's clock.
  const adopt = (value) => {
    setActivity(onLocalClock(Date.parse(value.idle_expires_at)) - value.idle_timeout_seconds * 1000);
    setSessionState(value);
  };
  const begin = (value) => {
    setSession(value, { onSignedOut: () => signedOut(SESSION_ENDED), onActivity: () => setActivity(Date.now()), onSessionChanged: adopt });
    setActivity(Date.now());
    setNotice(null);
    setSessionState(value);
  };

  useEffect(() => {
    api('GET', SESSION).then((value) => (value.signed_in ? begin(value) : signedOut(notice)), () => signedOut(notice));
  }, []);

  useEffect(() => {
    const titles = Object.fromEntries(PAGES);
    document.title = session ? `${titles[route.page]} · secrets-server console` : 'Sign in · secrets-server console';
  }, [session, route.page]);

  if (session === undefined) return html`<main id="main" class="loading" aria-busy="true">Loading…</main>`;
  if (session === null) return html`<${SignIn} onSignedIn=${begin} notice=${notice} />`;

  const hardEnd = Date.parse(session.expires_at);
  const endsAt = Math.min(activity + session.idle_timeout_seconds * 1000, hardEnd);
  const signOut = async () => {
    setSignOutError(null);
    try {
      await api('DELETE', SESSION);
    } catch (failure) {
      // The session still stands unless the server said it had ended (401): say so, and stay.
      if (!(failure instanceof ApiError && failure.status === 401)) {
        const why = failure.code === 'RWS_SESSION_CHANGED' ? 'this browser signed in again in another tab; press Sign out again to end that session' : failure.code ? `${failure.message} (${failure.code}). You are still signed in; try again` : 'the server could not be reached. You are still signed in; try again';
        setSignOutError(new Error(`Not signed out: ${why}.`));
        return;
      }
    }
    setSession(null);
    // A new document: the pages seen before are gone from this one, and not cached (no-store).
    location.replace(SIGNED_OUT_PAGE);
  };
  const stay = () => api('GET', SESSION).then((value) => value.signed_in && begin(value), () => undefined);
  // The idle end counted here knows only this tab's activity: another tab's keeps the session
  // open too. Ask the server (without counting as activity) before saying it has ended, and take
  // its idle end onto this tab's clock.
  const ended = () =>
    api('GET', SESSION, { background: true }).then(
      (value) => {
        if (!value.signed_in) return signedOut(SESSION_ENDED);
        setSession(value);
        adopt(value);
      },
      () => signedOut(SESSION_ENDED),
    );

  return html`<a class="skip" href="#main" onClick=${(event) => { event.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <header class="top">
      <span class="brand">secrets-server</span>
      <nav aria-label="Pages">
        <ul>
          ${PAGES.map(([id, title]) => html`<li><a href=${href(id)} aria-current=${route.page === id ? 'page' : undefined}>${title}</a></li>`)}
        </ul>
      </nav>
      <span class="who">Signed in as <strong>${session.name}</strong></span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    <${ExpiryBanner} endsAt=${endsAt} hardEnd=${hardEnd} onStay=${stay} onEnded=${ended} />
    <${Problem} error=${signOutError} />
    <main id="main" tabindex="-1"><${Page} route=${route} session=${session} /></main>`;
}

// Restored from the back-forward cache (it should not be: every answer is no-store): start over.
addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

render(html`<${App} />`, document.getElementById('app'));
