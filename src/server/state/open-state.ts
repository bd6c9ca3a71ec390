// Which state a command uses, and opening it: SQLite in the store directory unless a database
// URL is given (--database-url, RWS_DATABASE_URL, or RWS_DATABASE_URL_FILE naming a 0600 file).
// Opening migrates the schema and, for SQLite, imports a pre-database store once. Each driver is
// loaded only when chosen: an SQLite server never loads `pg`, and neither loads the other.
import { RwsError } from '../../errors.js';
import type { StoredAuditRow } from '../audit/record.js';
import { type Env, resolvePepper } from '../config.js';
import { readPrivateFile } from '../store/files.js';
import type { StorePaths } from '../store/layout.js';
import { ServerUsageError } from '../usage-error.js';
import { markImported, readLegacyStore } from './legacy/import-store.js';
import { lazySeal, type SealSource } from './grant-seal.js';
import type { SqlDriver } from './sql/driver.js';
import type { KeyGrantsAlteredError } from './state-errors.js';
import { migrate } from './sql/schema.js';
import { SqlStateStore, type StateCache } from './sql/sql-state-store.js';

export interface OpenStateOptions {
  beforeCommit?: (rows: readonly StoredAuditRow[]) => void;
  afterCommit?: (rows: readonly StoredAuditRow[]) => void;
  /** Servers keep a cache of keys and unlimited tokens while PostgreSQL notifications are live. */
  cache?: boolean;
  /** Opening without migrating (db status): a missing schema is reported, not made. */
  migrate?: boolean;
  /** `db import` imports the files itself, so that it can say what it did. */
  importLegacy?: boolean;
  /** A server: SQLite's WAL checkpoints run on a thread of their own. */
  serving?: boolean;
  /** Told once per key whose row fails its grant MAC (a server logs it). */
  onAlteredKey?: (error: KeyGrantsAlteredError) => void;
  now?: () => Date;
}

/** The database URL from the flag or the environment, or undefined for SQLite in the store. */
export async function resolveDatabaseUrl(flag: unknown, env: Env): Promise<string | undefined> {
  // yargs makes a repeated flag an array: which one was meant is a guess, and its string form
  // would carry every password after the first into the message.
  if (Array.isArray(flag)) throw new ServerUsageError('--database-url is given more than once', 'give it once (better: RWS_DATABASE_URL_FILE; argv is visible to other users)');
  if (flag !== undefined) return checkUrl(String(flag), '--database-url');
  // Both set: two deployments' settings met (a unit's Environment= and a drop-in's), and which
  // database was meant is a guess; taking one silently served the other's state.
  if (env.RWS_DATABASE_URL !== undefined && env.RWS_DATABASE_URL_FILE !== undefined) {
    throw new ServerUsageError('RWS_DATABASE_URL and RWS_DATABASE_URL_FILE are both set', 'set one of them (better: RWS_DATABASE_URL_FILE, a 0600 file); --database-url, when given, overrides both');
  }
  // Set but empty (a template that rendered nothing) is a mistake, never "use SQLite instead".
  if (env.RWS_DATABASE_URL !== undefined) return checkUrl(env.RWS_DATABASE_URL, 'RWS_DATABASE_URL');
  if (env.RWS_DATABASE_URL_FILE !== undefined) {
    let text: string;
    try {
      text = await readPrivateFile(env.RWS_DATABASE_URL_FILE);
    } catch (error) {
      if (error instanceof RwsError) throw new RwsError('RWS_CONFIG_INVALID', error.message.replace('RWS_STORE_INVALID', ''), { hint: error.hint });
      throw new RwsError('RWS_CONFIG_UNREADABLE', `cannot read RWS_DATABASE_URL_FILE ${env.RWS_DATABASE_URL_FILE} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { hint: 'check the path' });
    }
    return checkUrl(text.trim(), 'RWS_DATABASE_URL_FILE');
  }
  return undefined;
}

function checkUrl(url: string, from: string): string {
  if (!/^postgres(ql)?:\/\/[^\s]+$/.test(url)) {
    throw new ServerUsageError(`${from} is not a postgres:// or postgresql:// URL`, 'e.g. postgres://rws@db.internal:5432/rws?sslmode=verify-full');
  }
  return url;
}

export async function openDriver(paths: StorePaths, databaseUrl: string | undefined, options: { serving?: boolean } = {}): Promise<SqlDriver> {
  if (databaseUrl === undefined) {
    const { openSqlite } = await import('./sqlite/sqlite-driver.js');
    return openSqlite(paths.stateDb, { backgroundCheckpoints: options.serving === true });
  }
  const { openPostgres } = await import('./postgres/postgres-driver.js');
  return openPostgres(databaseUrl, { serving: options.serving });
}

export async function openState(paths: StorePaths, databaseUrl: string | undefined, options: OpenStateOptions = {}): Promise<SqlStateStore> {
  const driver = await openDriver(paths, databaseUrl, { serving: options.serving });
  const seal = storeSeal(paths);
  try {
    if (options.migrate !== false) await migrate(driver, options.now, undefined, seal);
    let cache: StateCache | undefined;
    if (options.cache && driver.dialect === 'postgres') {
      const { startNotifiedCache } = await import('./postgres/notified-cache.js');
      cache = await startNotifiedCache(databaseUrl as string);
    }
    const state = new SqlStateStore(driver, { beforeCommit: options.beforeCommit, afterCommit: options.afterCommit, cache, seal, onAlteredKey: options.onAlteredKey });
    if (databaseUrl === undefined && options.migrate !== false && options.importLegacy !== false) await importLegacyOnce(state, paths, options.now?.() ?? new Date());
    return state;
  } catch (error) {
    await driver.close().catch(() => undefined);
    throw error;
  }
}

/** Key grants are sealed under the pepper of the store the command was given, whichever database holds them. */
export function storeSeal(paths: StorePaths): SealSource {
  return lazySeal(() => resolvePepper(paths));
}

/**
 * SQLite in a store that predates the database: import its files the first time. A database that
 * was made without them is marked too, so files that appear later under those names (an
 * `--audit-log` pointed at `audit.log`, say) are never taken for a legacy store.
 */
export async function importLegacyOnce(state: SqlStateStore, paths: StorePaths, now: Date): Promise<boolean> {
  if (await state.legacyImportDone()) return false;
  const legacy = await readLegacyStore(paths, Math.floor(now.getTime() / 1000));
  if (legacy === undefined) {
    await state.markLegacyImport('none', now);
    return false;
  }
  const imported = await state.importLegacy(legacy, paths.dir, now);
  await markImported(legacy.files);
  return imported;
}
