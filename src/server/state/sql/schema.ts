// The schema, as ordered, named migrations. One text serves both databases: the types used
// (TEXT, INTEGER, BIGINT) mean the same in SQLite and PostgreSQL, times are ISO 8601 text (UTC,
// millisecond, so they sort as text) and token dates are epoch seconds. Applied steps are
// recorded in schema_migrations; migrating takes the database's write lock (SQLite) or an
// advisory lock (PostgreSQL), so processes that start together apply each step once.
import { randomUUID } from 'node:crypto';
import { RwsError } from '../../../errors.js';
import { ForeignSchemaError, StateUnavailableError } from '../state-errors.js';
import type { SealSource } from '../grant-seal.js';
import type { SqlDriver, Transaction } from './driver.js';
import { sealExistingKeys } from './grant-backfill.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
  /** Run after the statements, in their transaction: rewriting the rows the step changes the meaning of. */
  readonly rows?: (tx: Transaction, seal: SealSource | undefined) => Promise<void>;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'api keys, tokens, audit chain',
    statements: [
      `CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        hash TEXT NOT NULL,
        environments TEXT NOT NULL,
        key_patterns TEXT NOT NULL,
        max_ttl_minutes INTEGER,
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT,
        last_used_at TEXT
      )`,
      'CREATE INDEX api_keys_prefix ON api_keys (prefix)',
      `CREATE TABLE tokens (
        jti TEXT PRIMARY KEY,
        api_key_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        environment TEXT NOT NULL,
        key_pattern TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        usage_limit BIGINT,
        uses BIGINT NOT NULL DEFAULT 0,
        revoked_at TEXT
      )`,
      'CREATE INDEX tokens_api_key ON tokens (api_key_id)',
      'CREATE INDEX tokens_expires ON tokens (expires_at)',
      `CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        time TEXT NOT NULL,
        event TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT,
        api_key_id TEXT,
        jti TEXT,
        subject TEXT,
        environment TEXT,
        keys TEXT,
        client TEXT NOT NULL,
        count INTEGER NOT NULL,
        hash TEXT NOT NULL
      )`,
      'CREATE INDEX audit_api_key ON audit (api_key_id, seq)',
      'CREATE INDEX audit_time ON audit (time)',
      'CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)',
    ],
  },
  {
    version: 2,
    name: 'admin api keys',
    // Every key made before this step is a read key: DEFAULT 0 fills the existing rows.
    statements: ['ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0'],
  },
  {
    version: 3,
    name: 'console sessions',
    // Shared by replicas: a session opened on one is honoured by all. Only a hash of the session
    // id is kept (an HMAC under the pepper since a later release, so that a writer of the database
    // cannot add a row a cookie of its own matches; see session-cookie.ts); the CSRF token is
    // derived from the id, never stored.
    statements: [
      `CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        api_key_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
      )`,
      'CREATE INDEX console_sessions_api_key ON console_sessions (api_key_id)',
      'CREATE INDEX console_sessions_expires ON console_sessions (expires_at)',
    ],
  },
  {
    version: 4,
    name: 'api keys that forbid an offline fallback',
    // Keys made before this step keep what they could do: DEFAULT 1 allows the fallback cache.
    statements: ['ALTER TABLE api_keys ADD COLUMN fallback INTEGER NOT NULL DEFAULT 1'],
  },
  {
    version: 5,
    name: 'api keys looked up by their hmac',
    // A presented key is found by the HMAC of all of it, never by its first characters, so
    // knowing part of a valid key changes nothing in the work or the timing of a refusal.
    statements: ['CREATE INDEX api_keys_hash ON api_keys (hash)'],
  },
  {
    version: 6,
    name: 'api key grants sealed under the pepper',
    // An HMAC of every column the server never changes, under a key derived from the pepper (see
    // grant-seal.ts): a writer of the database without the pepper can no longer raise a key's
    // grants. The keys already there are sealed in this step's transaction (grant-backfill.ts).
    statements: ['ALTER TABLE api_keys ADD COLUMN grant_mac TEXT'],
    rows: sealExistingKeys,
  },
];

// The highest version (the list is kept in order; max() holds even if it is not).
export const SCHEMA_VERSION = Math.max(0, ...MIGRATIONS.map((migration) => migration.version));

const MIGRATIONS_TABLE = 'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)';

/**
 * Applies what is missing; returns the versions it applied. Safe when many processes start at once.
 * `seal` (from the store's pepper) is read only if a step has keys to seal.
 */
export async function migrate(driver: SqlDriver, now: () => Date = () => new Date(), migrations: readonly Migration[] = MIGRATIONS, seal?: SealSource): Promise<number[]> {
  try {
    return await applyMigrations(driver, now, migrations, seal);
  } catch (error) {
    // The transaction rolled back: a database shared with another application is left as it was.
    if (isForeignSchema(error)) throw new ForeignSchemaError(driver.location, error);
    throw error;
  }
}

/**
 * What a table or column of ours that already exists with another shape gives: PostgreSQL's
 * duplicate table, object or column, undefined column, or mismatched type; SQLite's messages.
 */
function isForeignSchema(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && ['42P07', '42710', '42701', '42703', '42804'].includes(code)) return true;
  return code === 'SQLITE_ERROR' && /already exists|no such column|has no column named/.test(String((error as Error).message));
}

function applyMigrations(driver: SqlDriver, now: () => Date, migrations: readonly Migration[], seal: SealSource | undefined): Promise<number[]> {
  return driver.transaction(async (tx) => {
    await tx.lock('rws:migrate');
    await tx.query(MIGRATIONS_TABLE);
    const applied = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((row) => Number(row.version)));
    const newer = [...applied].find((version) => version > SCHEMA_VERSION);
    if (newer !== undefined) throw new SchemaTooNewError(newer);
    const done: number[] = [];
    // `migrations` is shorter only in tests, to make a database as an older release left it.
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.query(statement);
      await migration.rows?.(tx, seal);
      await tx.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, now().toISOString()]);
      done.push(migration.version);
    }
    // Who this database is, kept by its backups: what a server saw is remembered per database.
    await tx.query('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', ['database_id', randomUUID()]);
    return done;
  });
}

export async function currentVersion(driver: SqlDriver): Promise<number> {
  try {
    const rows = await driver.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
    return Number(rows[0]?.version ?? 0);
  } catch (error) {
    // No table yet (SQLite's message, PostgreSQL's 42P01): version 0. Anything else — a damaged
    // file, an unreachable server — is reported, never taken for a fresh database.
    const code = (error as { code?: unknown }).code;
    if (code === '42P01' || /no such table/.test(String((error as Error).message))) return 0;
    throw error instanceof StateUnavailableError ? error : new StateUnavailableError('the state database cannot be read', error);
  }
}


export class SchemaTooNewError extends RwsError {
  constructor(version: number) {
    super('RWS_SCHEMA_TOO_NEW', `the state database has schema version ${version}, newer than this secrets-server knows (${SCHEMA_VERSION})`, {
      hint: 'upgrade secrets-server on this host; never run an older one against a newer database',
    });
  }
}
