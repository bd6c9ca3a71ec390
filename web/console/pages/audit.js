// The audit trail: filters in the URL (shareable, reloadable), cursor paging, a live mode that
// follows new events, and the requests-per-minute chart over the last hour and day.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { RequestChart } from '../chart.js';
import { isoFromLocal, list, localFromIso, when } from '../format.js';
import { html } from '../html.js';
import { go } from '../route.js';
import { Problem, Table, useLoad } from '../widgets.js';

const FILTERS = ['api_key_id', 'event', 'outcome', 'environment', 'since', 'until'];
/** The event filter's choices: every event the server records (the API refuses any other with a 400). */
export const EVENTS = ['token.generate', 'secret.read', 'secret.list', 'secret.batch', 'secret.offline_use', 'token.revoke', 'auth.self', 'auth.failure', 'auth.rate_limited', 'apikey.create', 'apikey.revoke', 'apikey.list', 'token.list', 'environment.list', 'secret.set', 'secret.delete', 'audit.read', 'metrics.read', 'status.read', 'console.signin', 'console.session', 'console.signout', 'state.import', 'state.rollback'];
const LIVE_EVERY_MS = 3000;
const NOT_LOADED = { events: [], next_cursor: null, loaded: false };

function filtersOf(params) {
  return Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || '']));
}

function auditPath(filters, cursor) {
  const query = new URLSearchParams();
  for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
  query.set('limit', '50');
  if (cursor) query.set('cursor', cursor);
  return `/api/v1/audit?${query}`;
}

/**
 * Uncontrolled: what the user picks stays picked while the page re-renders (live polling, the key
 * list arriving); the URL's filters are the starting values, and a new URL makes a new form.
 */
function FilterForm({ filters, keys, onApply }) {
  const apply = (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const next = {};
    for (const name of FILTERS) next[name] = String(data.get(name) || '').trim();
    // The time fields hold minutes: one left as shown keeps the URL's exact time (a shared link's
    // seconds), rather than being cut to the minute.
    // An empty field is no filter, even when the URL's time could not be shown in it.
    for (const name of ['since', 'until']) next[name] = next[name] && next[name] === localFromIso(filters[name]) ? filters[name] : isoFromLocal(next[name]) || '';
    onApply(next);
  };
  return html`<form class="filters grid-filters" onSubmit=${apply} aria-label="Audit filters">
    <div class="field"><label for="f-key">API key</label>
    <select id="f-key" name="api_key_id">
      <option value="">Any key</option>
      ${keys.map((key) => html`<option value=${key.id} selected=${key.id === filters.api_key_id}>${key.name} (${key.id})</option>`)}
      ${filters.api_key_id && !keys.some((key) => key.id === filters.api_key_id) ? html`<option value=${filters.api_key_id} selected>${filters.api_key_id}</option>` : null}
    </select></div>
    <div class="field"><label for="f-event">Event</label>
    <select id="f-event" name="event">
      <option value="">Any event</option>
      ${EVENTS.map((name) => html`<option value=${name} selected=${name === filters.event}>${name}</option>`)}
    </select></div>
    <div class="field"><label for="f-outcome">Outcome</label>
    <select id="f-outcome" name="outcome">
      <option value="">Any outcome</option>
      <option value="success" selected=${filters.outcome === 'success'}>success</option>
      <option value="failure" selected=${filters.outcome === 'failure'}>failure</option>
    </select></div>
    <div class="field"><label for="f-env">Environment</label>
    <input id="f-env" name="environment" defaultValue=${filters.environment} autocomplete="off" /></div>
    <div class="field"><label for="f-since">Since</label>
    <input id="f-since" name="since" type="datetime-local" defaultValue=${localFromIso(filters.since)} /></div>
    <div class="field"><label for="f-until">Until</label>
    <input id="f-until" name="until" type="datetime-local" defaultValue=${localFromIso(filters.until)} /></div>
    <div class="actions">
      <button type="submit" class="primary">Apply filters</button>
      <button type="button" onClick=${() => go('audit', {})}>Clear</button>
    </div>
  </form>`;
}

export function AuditPage({ params }) {
  const filters = filtersOf(params);
  const cursor = params.get('cursor') || '';
  const key = JSON.stringify([filters, cursor]);
  const [live, setLive] = useState(false);
  // The rows and the error are kept with the view (filters, page, live) they were loaded in and
  // shown only in it: the first render of a new view, before its effect runs, shows neither.
  const shownIn = `${key}\n${live}`;
  const [loaded, setLoaded] = useState({ view: shownIn, page: NOT_LOADED });
  const [failed, setFailed] = useState({ view: shownIn, error: null });
  const page = loaded.view === shownIn ? loaded.page : NOT_LOADED;
  const error = failed.view === shownIn ? failed.error : null;
  const setError = (failure) => setFailed({ view: shownIn, error: failure });
  const [charts, setCharts] = useState({ hour: null, day: null });
  const keys = useLoad(() => api('GET', '/api/v1/auth/keys'), []);
  // Which view (filters, page, live) an answer was asked for: one that arrives after the view
  // changed is dropped, so a slow answer never shows its rows under other filters.
  const view = useRef(0);

  const load = (background) => {
    const asked = view.current;
    return api('GET', auditPath(filters, live ? '' : cursor), { background }).then(
      (value) => {
        if (asked !== view.current) return;
        setLoaded({ view: shownIn, page: { ...value, loaded: true } });
        setError(null);
      },
      (failure) => asked === view.current && setError(failure),
    );
  };
  const loadCharts = (background) =>
    Promise.all(['hour', 'day'].map((window) => api('GET', `/api/v1/audit/chart?window=${window}`, { background }))).then(([hour, day]) => setCharts({ hour, day }), setError);

  useEffect(() => {
    view.current += 1;
    // Until this view's rows arrive the table says so, rather than showing the last view's.
    setLoaded({ view: shownIn, page: NOT_LOADED });
    setError(null);
    void load(false);
  }, [key, live]);
  useEffect(() => {
    void loadCharts(false);
  }, []);
  // The same filters again (the URL would not change): load them again, keeping the rows shown.
  const apply = (next) => (!cursor && FILTERS.every((name) => next[name] === filters[name]) ? void load(false) : go('audit', next));
  useEffect(() => {
    if (!live) return undefined;
    let ticks = 0;
    let polling = false;
    const timer = setInterval(() => {
      // One poll at a time: a slow answer is waited for, never overtaken by a newer poll's.
      if (!polling) {
        polling = true;
        void load(true).finally(() => (polling = false));
      }
      if (++ticks % 10 === 0) void loadCharts(true);
    }, LIVE_EVERY_MS);
    return () => clearInterval(timer);
  }, [live, key]);

  const names = new Map((keys.data?.keys ?? []).map((k) => [k.id, k.name]));
  const rows = page.events.map((e) => html`<tr key=${e.seq} class=${e.outcome === 'failure' ? 'failed' : ''}>
    <td>${e.seq}</td>
    <td class="time">${when(e.time)}</td>
    <td>${e.event}</td>
    <td>${e.outcome} ${e.status}${e.error_code ? html`<br /><code>${e.error_code}</code>` : null}</td>
    <td>${e.api_key_id ? html`${names.get(e.api_key_id) ?? ''}<br /><code class="id">${e.api_key_id}</code>` : '—'}</td>
    <td>${e.subject ?? '—'}</td>
    <td>${e.environment ?? '—'}</td>
    <td>${list(e.keys)}</td>
    <td>${e.client}${e.count > 1 ? ` (×${e.count})` : ''}</td>
  </tr>`);
  return html`<h1>Audit</h1>
    <section class="charts" aria-label="Requests per minute">
      <${RequestChart} data=${charts.hour} title="Last hour, per minute" />
      <${RequestChart} data=${charts.day} title="Last day, per minute (10-minute averages)" />
    </section>
    <${FilterForm} key=${JSON.stringify(filters)} filters=${filters} keys=${keys.data?.keys ?? []} onApply=${apply} />
    <div class="toolbar">
      <label class="inline"><input type="checkbox" id="live" checked=${live} onChange=${(event) => setLive(event.currentTarget.checked)} /> Live: follow new events</label>
      ${live ? html`<span class="live-dot" role="status">Following new events (every ${LIVE_EVERY_MS / 1000} s)</span>` : null}
    </div>
    <${Problem} error=${error} />
    <${Table} caption=${live ? 'Newest events, live' : 'Events, newest first'} head=${['Seq', 'Time', 'Event', 'Outcome', 'API key', 'Subject', 'Environment', 'Names', 'Client']} empty=${page.loaded ? 'No events match.' : error ? 'Not loaded.' : 'Loading…'}>${rows}<//>
    ${live ? null : html`<nav class="pager" aria-label="Audit pages">
      ${cursor ? html`<a href=${'#/audit?' + new URLSearchParams(Object.entries(filters).filter(([, v]) => v))}>Newest</a>` : null}
      ${page.next_cursor ? html`<button type="button" onClick=${() => go('audit', { ...filters, cursor: page.next_cursor })}>Older events</button>` : null}
    </nav>`}`;
}
