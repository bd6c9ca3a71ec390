// `secrets-server db migrate|status|import`: the schema ahead of time, where the state is, and
// moving a single server's file state into the database.
import { promises as fs } from 'node:fs';
import { RwsError } from '../../errors.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveStore } from '../config.js';
import { markImported, readLegacyStore } from '../state/legacy/import-store.js';
import { checkSamePepper } from '../state/legacy/pepper-check.js';
import { openDriver, resolveDatabaseUrl, storeSeal } from '../state/open-state.js';
import type { SqlDriver } from '../state/sql/driver.js';
import { currentVersion, migrate, SCHEMA_VERSION } from '../state/sql/schema.js';
import { storePaths, type StorePaths } from '../store/layout.js';
import { commandDatabaseUrl, openCommandState } from './state-args.js';
import { afterCommit } from './after-commit.js';
import { printable, printableJson } from '../../printable.js';

/** The bare driver, without migrating (`db status` must see an old schema as it is). */
async function withDriver(args: Record<string, unknown>, io: CliIo, use: (driver: SqlDriver, paths: StorePaths) => Promise<void>): Promise<number> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  const driver = await openDriver(paths, await commandDatabaseUrl(args, io));
  try {
    await use(driver, paths);
  } finally {
    await driver.close();
  }
  return EXIT_OK;
}

export function dbMigrate(args: Record<string, unknown>, io: CliIo): Promise<number> {
  return withDriver(args, io, async (driver, paths) => {
    // The keys already in the database are sealed under this store's pepper (migration 6).
    const applied = await migrate(driver, undefined, undefined, storeSeal(paths));
    io.stdout.write(applied.length === 0 ? `schema is at version ${SCHEMA_VERSION}; nothing to do (${printable(driver.location)})\n` : `applied migration${applied.length === 1 ? '' : 's'} ${applied.join(', ')}; schema is at version ${SCHEMA_VERSION} (${printable(driver.location)})\n`);
  });
}

export async function dbStatus(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  const url = await resolveDatabaseUrl(args['database-url'], io.env);
  // Looking must not make: a store without state.db says so.
  if (url === undefined && !(await fs.stat(paths.stateDb).then(() => true, () => false))) {
    const view = { kind: 'sqlite', location: paths.stateDb, schema_version: 0, latest_version: SCHEMA_VERSION };
    io.stdout.write(args.json ? `${printableJson(view)}\n` : `state: sqlite ${printable(paths.stateDb)} (not made yet; any command or serve makes it)\n`);
    return EXIT_OK;
  }
  return withDriver(args, io, async (driver) => {
    const version = await currentVersion(driver);
    const view = { kind: driver.dialect, location: driver.location, schema_version: version, latest_version: SCHEMA_VERSION };
    if (args.json) io.stdout.write(`${printableJson(view)}\n`);
    else io.stdout.write(`state: ${view.kind} ${printable(view.location)}\nschema version: ${version} (this secrets-server knows ${SCHEMA_VERSION}${version < SCHEMA_VERSION ? '; run secrets-server db migrate' : ''})\n`);
  });
}

export async function dbImport(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  const from = storePaths(String(args['from-store']));
  await checkStoreDir(from).catch((error: unknown) => {
    // `init` there would make an empty store, with nothing to import.
    if (error instanceof RwsError && error.code === 'RWS_STORE_MISSING') throw new RwsError('RWS_STORE_MISSING', `--from-store ${from.dir} does not exist`, { hint: 'give the store directory of the single server whose file state (api-keys.json, token-state.log, audit.log) is to be imported' });
    throw error;
  });
  const now = new Date();
  const legacy = await readLegacyStore(from, Math.floor(now.getTime() / 1000));
  if (legacy === undefined) throw new RwsError('RWS_STORE_MISSING', `${from.dir} holds no api-keys.json, token-state.log or audit.log to import`, { hint: 'it may have been imported already (*.imported)' });
  await checkSamePepper(from, paths, legacy.keys.length);
  // Opened without SQLite's import at start: that one would move these very files in when
  // --from-store is the store, and this command would then report "nothing was imported".
  const state = await openCommandState(paths, args, io, { importLegacy: false });
  try {
    if (!(await state.importLegacy(legacy, from.dir, now))) {
      // SQLite state that first opened with no files in its store is marked so too.
      throw new RwsError('RWS_ALREADY_IMPORTED', `the state at ${state.location} is marked as imported already (by an earlier import, or, for SQLite, by its first command finding no file state in its store); nothing was imported`, { hint: 'import once; later changes are made with the admin commands (SQLite state imports its own store\'s files at its first command)' });
    }
  } catch (error) {
    await state.close().catch(() => undefined);
    throw error;
  }
  // Committed: the import stands (a second one is refused), so what follows only warns.
  io.stdout.write(`imported ${legacy.keys.length} API keys, ${legacy.tokens.length} live token records and ${legacy.audit.length} audit lines from ${printable(from.dir)} into ${printable(state.location)}\n`);
  await afterCommit(io, 'closing the state database', () => state.close());
  await markImported(legacy.files);
  return EXIT_OK;
}
