// The SQLite connections' own settings, read back from SQLite itself on both connections; the
// named locks' files, against processes of an earlier release on the same store.
import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqlite } from '../../../src/server/state/sqlite/sqlite-driver.js';
import type { SqlDriver } from '../../../src/server/state/sql/driver.js';

const require = createRequire(import.meta.url);

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

  /** The POSIX locks this process holds on `file`, as /proc/locks lists them. */
  async function ownLocksOn(file: string): Promise<string[]> {
    const { ino } = await stat(file);
    return (await readFile('/proc/locks', 'utf8')).split('\n').filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[4] === String(process.pid) && fields[5]?.endsWith(`:${ino}`) === true;
    });
  }

  it("keeps SQLite's lock on the database file through its checks, and while a second driver of the same file opens and closes", async () => {
    const file = path.join(dir, 'state.db');
    driver = await openSqlite(file);
    await driver.query('SELECT 1');
    // In WAL mode every connection holds a SHARED lock on the database file while it is open.
    expect(await ownLocksOn(file)).not.toEqual([]);
    // The check a server runs once a second: closing a descriptor it opened on the file would
    // drop every lock this process holds there.
    for (let i = 0; i < 3; i++) await driver.checkStorage?.();
    expect(await ownLocksOn(file)).not.toEqual([]);
    const second = await openSqlite(file);
    await second.checkStorage?.();
    await second.close();
    expect(await ownLocksOn(file)).not.toEqual([]);
    await driver.close();
    driver = undefined;
    expect(await ownLocksOn(file)).toEqual([]);
  });

  describe('named locks, beside a release that held one file lock for every name', () => {
    /** A process holding `state-locks.db`'s write lock, as an edit by an earlier release did, until its stdin ends. */
    async function earlierReleaseHolder(): Promise<{ pid: number; end(): Promise<void> }> {
      // Made as that release made it: private to its owner.
      await writeFile(path.join(dir, 'state-locks.db'), '', { mode: 0o600 });
      const script = `
        const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
        const db = new Database(${JSON.stringify(path.join(dir, 'state-locks.db'))});
        db.exec('BEGIN EXCLUSIVE');
        process.stdout.write('held\\n');
        process.stdin.resume();
        process.stdin.on('end', () => { db.exec('ROLLBACK'); db.close(); });
      `;
      const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
      });
      return {
        pid: child.pid as number,
        end: async () => {
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.stdin.end();
          await exited;
        },
      };
    }

    it("an earlier release's edit keeps every name's lock out, and is named; once it ends the lock is taken", async () => {
      driver = await openSqlite(path.join(dir, 'state.db'), { busyTimeoutMs: 1_000 });
      const holder = await earlierReleaseHolder();
      try {
        await expect(driver.lock('sops:staging')).rejects.toThrow(new RegExp(`^the lock sops:staging is held by process ${holder.pid} \\(`));
      } finally {
        await holder.end();
      }
      const lock = await driver.lock('sops:staging');
      await lock.release();
    });

    it("a lock held by this release keeps an earlier release's edit out until it is released", async () => {
      driver = await openSqlite(path.join(dir, 'state.db'), { busyTimeoutMs: 1_000 });
      const lock = await driver.lock('sops:production');
      // What an earlier release's edit tries: the write lock of state-locks.db, from another process.
      const tryEarlier = () => tryWriteLock('state-locks.db');
      try {
        expect(await tryEarlier()).toBe('SQLITE_BUSY');
      } finally {
        await lock.release();
      }
      expect(await tryEarlier()).toBe('taken');
      expect((await readdir(dir)).filter((file) => file.startsWith('state-locks')).sort()).toEqual(['state-locks.db', 'state-locks.sops-production.db']);
    });

    it("keeps its locks while this process takes and waits for others: opening a lock file never drops another's lock", async () => {
      // POSIX locks belong to the process and file: closing any descriptor of the file drops them
      // all. A descriptor opened and closed to check a lock file's mode, while another edit of this
      // process held a lock on that file, let another process in.
      driver = await openSqlite(path.join(dir, 'state.db'), { busyTimeoutMs: 300 });
      const production = await driver.lock('sops:production');
      try {
        const staging = await driver.lock('sops:staging');
        await staging.release();
        await expect(driver.lock('sops:production')).rejects.toThrow('the lock sops:production is held by');
        expect(await tryWriteLock('state-locks.db')).toBe('SQLITE_BUSY');
        expect(await tryWriteLock('state-locks.sops-production.db')).toBe('SQLITE_BUSY');
      } finally {
        await production.release();
      }
      expect(await tryWriteLock('state-locks.sops-production.db')).toBe('taken');
    });

    /** Whether another process gets the write lock of a file in the store at once. */
    function tryWriteLock(file: string): Promise<string> {
      return new Promise<string>((resolve) => {
        const script = `
          const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
          const db = new Database(${JSON.stringify(path.join(dir, file))}, { timeout: 200 });
          try { db.exec('BEGIN EXCLUSIVE'); db.exec('ROLLBACK'); console.log('taken'); } catch (error) { console.log(error.code); }
        `;
        execFile(process.execPath, ['-e', script], (_error, stdout) => resolve(stdout.trim()));
      });
    }
  });
});
