// Live tokens (or every record still held), filtered by key in the URL, each revocable.
import { useState } from 'preact/hooks';
import { api, enc } from '../api.js';
import { when } from '../format.js';
import { html } from '../html.js';
import { go } from '../route.js';
import { Confirm, Notice, emptyText, Problem, Table, useLoad } from '../widgets.js';

export function TokensPage({ params }) {
  const apiKeyId = params.get('api_key_id') || '';
  const all = params.get('all') === '1';
  const keys = useLoad(() => api('GET', '/api/v1/auth/keys'), []);
  const query = new URLSearchParams();
  if (apiKeyId) query.set('api_key_id', apiKeyId);
  if (!all) query.set('active', 'true');
  const tokens = useLoad(() => api('GET', `/api/v1/vault/tokens?${query}`), [apiKeyId, all]);
  // What a revocation said belongs to the view it was made in, not to the next filter's rows: it
  // is kept with that view's filters and shown only while they hold, so no frame shows it under
  // the next filter's rows (an effect clearing it ran a frame late) and a late answer lands nowhere.
  const view = `${apiKeyId}\n${all}`;
  const [said, setSaid] = useState({ view, error: null, notice: '' });
  const error = said.view === view ? said.error : null;
  const notice = said.view === view ? said.notice : '';
  const names = new Map((keys.data?.keys ?? []).map((key) => [key.id, key.name]));
  const revoke = async (token) => {
    setSaid({ view, error: null, notice: '' });
    try {
      await api('DELETE', `/api/v1/vault/tokens/${enc(token.jti)}`);
      setSaid({ view, error: null, notice: `Token ${token.jti} revoked.` });
      tokens.reload();
    } catch (failure) {
      setSaid({ view, error: failure, notice: '' });
    }
  };
  const rows = (tokens.data?.tokens ?? []).map((t) => html`<tr key=${t.jti} class=${t.revoked_at ? 'revoked' : ''}>
    <td><code class="id">${t.jti}</code></td>
    <td>${names.get(t.api_key_id) ?? ''}<br /><code class="id">${t.api_key_id}</code></td>
    <td>${t.subject}</td>
    <td>${t.environment}</td>
    <td><code>${t.key_pattern}</code></td>
    <td class="time">${when(t.issued_at)}</td>
    <td class="time">${when(t.expires_at)}</td>
    <td>${t.usage_limit === null ? `${t.uses} (no limit)` : `${t.uses} of ${t.usage_limit}`}</td>
    <td>${t.revoked_at ? `revoked ${when(t.revoked_at)}` : html`<${Confirm} label="Revoke" question=${`Revoke token ${t.jti}?`} confirmLabel="Revoke token" onConfirm=${() => revoke(t)} />`}</td>
  </tr>`);
  return html`<h1>Tokens</h1>
    <form class="filters" onSubmit=${(event) => event.preventDefault()}>
      <label for="token-key">API key</label>
      <select id="token-key" value=${apiKeyId} onChange=${(event) => go('tokens', { api_key_id: event.currentTarget.value, all: all ? '1' : '' })}>
        <option value="">All keys</option>
        ${(keys.data?.keys ?? []).map((key) => html`<option value=${key.id}>${key.name} (${key.id})</option>`)}
      </select>
      <label class="inline"><input type="checkbox" checked=${all} onChange=${(event) => go('tokens', { api_key_id: apiKeyId, all: event.currentTarget.checked ? '1' : '' })} /> Include ended tokens</label>
      <button type="button" onClick=${() => tokens.reload()}>Refresh</button>
    </form>
    <${Notice} text=${notice} />
    <${Problem} error=${error || tokens.error} />
    <${Table} caption=${all ? 'Token records, newest first' : 'Live tokens, newest first'} head=${['Token id (jti)', 'API key', 'Subject', 'Environment', 'Pattern', 'Issued', 'Expires', 'Uses', '']} empty=${emptyText(tokens, 'No tokens.')}>${rows}<//>`;
}
