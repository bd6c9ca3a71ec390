// Small parts every page uses: a confirmation that needs a second, deliberate press; an error or
// notice line read out by screen readers; a table that scrolls sideways on a narrow screen.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html } from './html.js';

let confirms = 0;

export function Confirm({ label, question, confirmLabel, onConfirm, danger = true }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const id = useMemo(() => `confirm-${++confirms}`, []);
  const [returnFocus, setReturnFocus] = useState(false);
  useEffect(() => {
    // Keyboard users land on the confirming button, and back on the first one after Cancel.
    if (asking) document.getElementById(`${id}-yes`)?.focus();
    else if (returnFocus) document.getElementById(id)?.focus();
  }, [asking]);
  if (!asking) {
    return html`<button type="button" id=${id} class=${danger ? 'danger' : ''} onClick=${() => setAsking(true)}>${label}</button>`;
  }
  const confirm = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setAsking(false);
    }
  };
  return html`<span class="confirm" role="group" aria-label=${question}>
    <span class="question">${question}</span>
    <button type="button" id=${`${id}-yes`} class="danger" disabled=${busy} onClick=${confirm}>${confirmLabel}</button>
    <button type="button" disabled=${busy} onClick=${() => { setReturnFocus(true); setAsking(false); }}>Cancel</button>
  </span>`;
}

export function Problem({ error }) {
  if (!error) return null;
  const text = error.code ? `${error.message} (${error.code})` : String(error.message || error);
  return html`<p class="problem" role="alert">${text}</p>`;
}

export function Notice({ text }) {
  return html`<p class="notice" role="status" aria-live="polite">${text || ''}</p>`;
}

export function Table({ caption, head, children, empty }) {
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label=${caption}>
    <table>
      <caption>${caption}</caption>
      <thead><tr>${head.map((title) => html`<th scope="col">${title}</th>`)}</tr></thead>
      <tbody>${children && children.length ? children : html`<tr><td colspan=${head.length} class="empty">${empty}</td></tr>`}</tbody>
    </table>
  </div>`;
}

/** What a table shows with no rows: still loading, failed (its error is shown apart), or none. */
export function emptyText(load, none) {
  return load.loading ? 'Loading…' : load.error ? 'Not loaded.' : none;
}

/**
 * Loads `load()` on mount and whenever `deps` change; `reload` runs it again. A reload keeps the
 * data on screen until the new data comes; new deps (another filter) do not show the old data
 * meanwhile. An answer for deps or a reload since replaced is dropped.
 */
export function useLoad(load, deps) {
  // The state is kept with the deps it was loaded for: on the first render after the deps change,
  // before the effect below runs, the old data or error must not show under the new filter.
  const key = JSON.stringify(deps);
  const [state, setState] = useState({ key, data: undefined, error: undefined, loading: true });
  const [tick, setTick] = useState(0);
  const loadedTick = useRef(tick);
  useEffect(() => {
    let live = true;
    const reloading = loadedTick.current !== tick;
    loadedTick.current = tick;
    setState((previous) => (reloading ? { ...previous, loading: true } : { key, data: undefined, error: undefined, loading: true }));
    load().then(
      (data) => live && setState({ key, data, error: undefined, loading: false }),
      (error) => live && setState({ key, data: undefined, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const shown = state.key === key ? state : { key, data: undefined, error: undefined, loading: true };
  return { data: shown.data, error: shown.error, loading: shown.loading, reload: () => setTick((n) => n + 1) };
}
