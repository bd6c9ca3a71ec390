// The SQLite connections' own settings, read back from SQLite itself on both connections.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqlite } from '../../../src/server/state/sqlite/sqlite-driver.js';
import type { SqlDriver } from '../../../src/server/state/sql/driver.js';

describe('SQLite driver', () => {
  let dir: string;
  let driver: SqlDriver | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rws-sqlite-driver-'));
  });
  afterEach(async () => {
    await driver?.close();
    driver = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps temporary tables in memory on the writer and on the reader (2 = MEMORY), with WAL', async () => {
    driver = await openSqlite(path.join(dir, 'state.db'));
    const written = await driver.transaction((tx) => tx.query<{ temp_store: number }>('PRAGMA temp_store'));
    expect(written).toEqual([{ temp_store: 2 }]);
    // A SELECT goes to the reader connection.
    expect(await driver.query('SELECT temp_store FROM pragma_temp_store')).toEqual([{ temp_store: 2 }]);
    expect(await driver.query('SELECT journal_mode FROM pragma_journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  });
});
