// API keys: the list with grants, expiry, last use and live tokens; create (the new key shown
// once, with a copy button); revoke after confirmation.
import { useState } from 'preact/hooks';
import { api, enc } from '../api.js';
import { isoFromLocal, list, when } from '../format.js';
import { html } from '../html.js';
import { href } from '../route.js';
import { Confirm, Notice, emptyText, Problem, Table, useLoad } from '../widgets.js';

const words = (text) => text.split(/[\s,]+/).filter(Boolean);

function CreatedKey({ created, onDone }) {
  const [copied, setCopied] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied('Copied to the clipboard.');
    } catch {
      document.getElementById('new-key')?.select();
      setCopied('Copying was refused by the browser: the key is selected, copy it with the keyboard.');
    }
  };
  return html`<section class="created" aria-labelledby="created-title">
    <h3 id="created-title">Key ${created.name} created (${created.id})</h3>
    <p class="warning"><strong>Copy this key now.</strong> It is shown this once and never again: the server keeps only an HMAC of it.</p>
    <div class="key-row">
      <label for="new-key">New API key</label>
      <input id="new-key" readonly value=${created.key} spellcheck=${false} autocomplete="off" />
      <button type="button" class="primary" onClick=${copy}>Copy</button>
    </div>
    <${Notice} text=${copied} />
    <button type="button" onClick=${onDone}>I have stored it</button>
  </section>`;
}

function CreateForm({ onCreated }) {
  const [admin, setAdmin] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const body = { name: String(data.get('name')).trim() };
    if (admin) body.admin = true;
    else {
      body.environments = words(String(data.get('environments')));
      body.key_patterns = words(String(data.get('key_patterns')));
      const ttl = String(data.get('max_ttl_minutes'));
      if (ttl) body.max_ttl_minutes = Number(ttl);
    }
    const expires = isoFromLocal(String(data.get('expires_at')));
    if (expires) body.expires_at = expires;
    setError(null);
    try {
      const created = await api('POST', '/api/v1/auth/keys', { json: body });
      form.reset();
      setAdmin(false);
      onCreated(created);
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<form class="card grid" onSubmit=${submit} aria-labelledby="create-title">
    <h3 id="create-title">Create a key</h3>
    <label for="key-name">Name</label>
    <input id="key-name" name="name" required maxlength="128" autocomplete="off" />
    <fieldset>
      <legend>Kind</legend>
      <label><input type="radio" name="kind" value="read" checked=${!admin} onChange=${() => setAdmin(false)} /> Read key (mints tokens for its grants)</label>
      <label><input type="radio" name="kind" value="admin" checked=${admin} onChange=${() => setAdmin(true)} /> Admin key (manages; reads no secret)</label>
    </fieldset>
    ${!admin && html`
      <label for="key-envs">Environments</label>
      <input id="key-envs" name="environments" required placeholder="production staging" aria-describedby="key-envs-help" autocomplete="off" />
      <p id="key-envs-help" class="help">Separated by spaces or commas.</p>
      <label for="key-patterns">Key patterns</label>
      <input id="key-patterns" name="key_patterns" required placeholder="DB_* SERVICE_B_KEY" aria-describedby="key-patterns-help" autocomplete="off" />
      <p id="key-patterns-help" class="help">Globs: <code>*</code> any run, <code>?</code> one character.</p>
      <label for="key-ttl">Longest token lifetime (minutes, optional)</label>
      <input id="key-ttl" name="max_ttl_minutes" type="number" min="1" max="60" />`}
    <label for="key-expires">Expires (optional)</label>
    <input id="key-expires" name="expires_at" type="datetime-local" />
    <div class="actions"><button type="submit" class="primary">Create key</button></div>
    <${Problem} error=${error} />
  </form>`;
}

export function KeysPage() {
  const keys = useLoad(() => api('GET', '/api/v1/auth/keys'), []);
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const revoke = async (key) => {
    setError(null);
    try {
      await api('DELETE', `/api/v1/auth/keys/${enc(key.id)}`);
      setNotice(`Key ${key.name} (${key.id}) revoked: its tokens and sessions have ended.`);
      keys.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const rows = (keys.data?.keys ?? []).slice().reverse().map((key) => html`<tr key=${key.id} class=${key.revoked_at ? 'revoked' : ''}>
    <td>${key.name}<br /><code class="id">${key.id}</code></td>
    <td>${key.admin ? 'admin' : 'read'}${key.grants_intact === false ? html`<br /><strong class="altered">refused: grants changed outside secrets-server</strong>` : ''}</td>
    <td>${key.admin ? '—' : html`${list(key.environments)}<br /><code>${list(key.key_patterns)}</code>`}</td>
    <td class="time">${when(key.created_at)}</td>
    <td class="time">${key.expires_at ? when(key.expires_at) : 'never'}</td>
    <td class="time">${when(key.last_used_at)}</td>
    <td><a href=${href('tokens', { api_key_id: key.id })} aria-label=${`live tokens of ${key.name}`}>${key.live_tokens}</a></td>
    <td>${key.revoked_at ? `revoked ${when(key.revoked_at)}` : html`<${Confirm} label="Revoke" question=${`Revoke ${key.name}? Its tokens and sessions end now.`} confirmLabel="Revoke key" onConfirm=${() => revoke(key)} />`}</td>
  </tr>`);
  return html`<h1>API keys</h1>
    ${created ? html`<${CreatedKey} created=${created} onDone=${() => setCreated(null)} />` : html`<${CreateForm} onCreated=${(value) => { setCreated(value); keys.reload(); }} />`}
    <${Notice} text=${notice} />
    <${Problem} error=${error || keys.error} />
    <${Table} caption="API keys, newest first" head=${['Name', 'Kind', 'Grants', 'Created', 'Expires', 'Last used', 'Live tokens', '']} empty=${emptyText(keys, 'No keys yet.')}>${rows}<//>`;
}
