// The state every command opens: `--database-url` (or RWS_DATABASE_URL[_FILE]) for PostgreSQL,
// else SQLite in the store directory.
import type { CliIo } from '../cli.js';
import type { StorePaths } from '../store/layout.js';
import { type OpenStateOptions, openState, resolveDatabaseUrl } from '../state/open-state.js';
import { ignoredLimitsWarning } from '../state/postgres/time-limits.js';
import type { SqlStateStore } from '../state/sql/sql-state-store.js';

/** The database URL a command uses, or undefined for SQLite; said once on stderr if time limits it or the environment sets are ignored. */
export async function commandDatabaseUrl(args: Record<string, unknown>, io: CliIo): Promise<string | undefined> {
  const url = await resolveDatabaseUrl(args['database-url'], io.env);
  const warning = url === undefined ? undefined : ignoredLimitsWarning(url, io.env);
  if (warning !== undefined) io.stderr.write(`${warning}\n`);
  return url;
}

export async function openCommandState(paths: StorePaths, args: Record<string, unknown>, io: CliIo, options: OpenStateOptions = {}): Promise<SqlStateStore> {
  return openState(paths, await commandDatabaseUrl(args, io), options);
}
