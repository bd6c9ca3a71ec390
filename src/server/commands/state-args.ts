// The state every command opens: `--database-url` (or RWS_DATABASE_URL[_FILE]) for PostgreSQL,
// else SQLite in the store directory.
import type { CliIo } from '../cli.js';
import type { StorePaths } from '../store/layout.js';
import { type OpenStateOptions, openState, resolveDatabaseUrl } from '../state/open-state.js';
import type { SqlStateStore } from '../state/sql/sql-state-store.js';

export async function openCommandState(paths: StorePaths, args: Record<string, unknown>, io: CliIo, options: OpenStateOptions = {}): Promise<SqlStateStore> {
  return openState(paths, await resolveDatabaseUrl(args['database-url'], io.env), options);
}
