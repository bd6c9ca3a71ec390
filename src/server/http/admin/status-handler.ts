// `GET /api/v1/admin/status`: what an operator checks first (the console's Status page): where
// the state is kept and at which schema version, this server's version and uptime, and the
// digest of each environment's file it serves (to compare replicas). Admin-only: unlike
// /healthz it says which version runs, which helps an attacker pick an exploit.
import { packageVersion } from '../../version.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { authenticateAdmin } from './admin-auth.js';
import { readQuery } from './query.js';

export async function readStatus(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  readQuery(query, []);
  const versions = await deps.secrets.versions();
  const environments = Object.entries(versions)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, version]) => ({ name, digest: 'digest' in version ? version.digest : null, error: 'error' in version ? version.error : null }));
  const uptime = Math.floor(process.uptime());
  return {
    status: 200,
    body: {
      state: { kind: deps.state.kind, schema_version: await deps.state.schemaVersion() },
      server: { version: packageVersion(), started_at: new Date(x.now.getTime() - uptime * 1000).toISOString(), uptime_seconds: uptime },
      environments,
    },
  };
}
