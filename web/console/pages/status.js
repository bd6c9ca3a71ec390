// Status: the state (kind, schema version), this server (version, uptime) and the digest of each
// environment's file it serves, to compare replicas.
import { api } from '../api.js';
import { duration, when } from '../format.js';
import { html } from '../html.js';
import { emptyText, Problem, Table, useLoad } from '../widgets.js';

export function StatusPage() {
  const status = useLoad(() => api('GET', '/api/v1/admin/status'), []);
  const s = status.data;
  return html`<h1>Status</h1>
    <${Problem} error=${status.error} />
    ${s ? html`<dl class="facts">
      <dt>State store</dt><dd>${s.state.kind === 'postgres' ? 'PostgreSQL' : 'SQLite'}</dd>
      <dt>Schema version</dt><dd>${s.state.schema_version}</dd>
      <dt>Server version</dt><dd>${s.server.version}</dd>
      <dt>Up since</dt><dd>${when(s.server.started_at)} (${duration(s.server.uptime_seconds)})</dd>
    </dl>` : null}
    <${Table} caption="Environments served by this server" head=${['Environment', 'File digest']} empty=${emptyText(status, 'No environments.')}>${(s?.environments ?? []).map((env) => html`<tr><td>${env.name}</td><td><code class="id">${env.digest ?? `not served: ${env.error}`}</code></td></tr>`)}<//>
    <p><button type="button" onClick=${status.reload}>Refresh</button></p>`;
}
