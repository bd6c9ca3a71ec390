// Secrets: environments and their names; set or replace a value in a write-only field; delete
// after confirmation. No value is ever fetched, so none can be shown.
import { useState } from 'preact/hooks';
import { api, enc } from '../api.js';
import { when } from '../format.js';
import { html } from '../html.js';
import { Confirm, Notice, emptyText, Problem, Table, useLoad } from '../widgets.js';

function Environment({ env, onChanged, setNotice, setError }) {
  const names = useLoad(() => (env.error ? Promise.resolve({ names: [] }) : api('GET', `/api/v1/admin/environments/${enc(env.name)}/secrets`)), [env.name, env.digest]);
  const remove = async (name) => {
    setError(null);
    try {
      await api('DELETE', `/api/v1/admin/environments/${enc(env.name)}/secrets/${enc(name)}`);
      setNotice(`Deleted ${name} from ${env.name}.`);
      onChanged();
    } catch (failure) {
      setError(failure);
    }
  };
  const rows = (names.data?.names ?? []).map((name) => html`<tr key=${name}>
    <td><code>${name}</code></td>
    <td><${Confirm} label="Delete" question=${`Delete ${name} from ${env.name}?`} confirmLabel="Delete secret" onConfirm=${() => remove(name)} /></td>
  </tr>`);
  return html`<section class="card" aria-labelledby=${`env-${env.name}`}>
    <h2 id=${`env-${env.name}`}>${env.name}</h2>
    <p class="meta">${env.error ? `Not served: ${env.error}` : `${env.secrets} secrets · changed ${when(env.changed_at)}`} · <code class="id">${env.digest ?? ''}</code></p>
    <${Table} caption=${`Names in ${env.name}`} head=${['Name', '']} empty=${emptyText(names, 'No secrets.')}>${rows}<//>
    <${Problem} error=${names.error} />
  </section>`;
}

export function SecretsPage() {
  const envs = useLoad(() => api('GET', '/api/v1/admin/environments'), []);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const submit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const data = new FormData(form);
    const environment = String(data.get('environment')).trim();
    const name = String(data.get('name')).trim();
    setError(null);
    try {
      await api('PUT', `/api/v1/admin/environments/${enc(environment)}/secrets/${enc(name)}`, { json: { value: String(data.get('value')) } });
      setNotice(`Set ${name} in ${environment}.`);
      form.reset();
      envs.reload();
    } catch (failure) {
      setError(failure);
    } finally {
      // The value leaves the page whatever the answer: it is never kept in a field longer than needed.
      const field = document.getElementById('s-value');
      if (field) field.value = '';
    }
  };
  const list = envs.data?.environments ?? [];
  return html`<h1>Secrets</h1>
    <form class="card grid" onSubmit=${submit} aria-labelledby="set-title" autocomplete="off">
      <h3 id="set-title">Set or replace a secret</h3>
      <label for="s-env">Environment</label>
      <input id="s-env" name="environment" required list="env-names" pattern="[A-Za-z0-9][A-Za-z0-9_\\-]{0,63}" autocomplete="off" />
      <datalist id="env-names">${list.map((env) => html`<option value=${env.name} />`)}</datalist>
      <label for="s-name">Name</label>
      <input id="s-name" name="name" required pattern="[A-Za-z_][A-Za-z0-9_]{0,127}" autocomplete="off" spellcheck=${false} />
      <label for="s-value">Value</label>
      <input id="s-value" name="value" type="password" required autocomplete="new-password" spellcheck=${false} aria-describedby="s-value-help" />
      <p id="s-value-help" class="help">Write-only: the value goes into the encrypted file and is never shown again, here or anywhere.</p>
      <div class="actions"><button type="submit" class="primary">Set secret</button></div>
    </form>
    <${Notice} text=${notice} />
    <${Problem} error=${error || envs.error} />
    ${list.length === 0 && !envs.loading ? html`<p>No environments yet: set a secret to make one.</p>` : null}
    ${list.map((env) => html`<${Environment} key=${env.name} env=${env} onChanged=${envs.reload} setNotice=${setNotice} setError=${setError} />`)}`;
}
