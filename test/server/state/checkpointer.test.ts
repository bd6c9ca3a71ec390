// The serving process's SQLite checkpoints on a thread of their own (src/server/state/sqlite/
// checkpointer.ts), run as the built worker against a real database file: the WAL stays bounded
// under steady commits that never checkpoint themselves, every commit reaches the database file,
// and a server's rows reach it within a fraction of a second once requests stop.
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import Sqlite from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { call, makeApiKey, makeStore, startServer, token } from '../helpers/server.js';

const WORKER = fileURLToPath(new URL('../../../dist/server/state/sqlite/checkpointer.js', import.meta.url));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rws-checkpointer-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Rows in the database file alone, as a copy without its WAL shows them (undefined: torn copy). */
function rowsInFileAlone(file: string, sql: string): number | undefined {
  const copy = path.join(dir, `copy-${Date.now()}-${Math.random()}.db`);
  copyFileSync(file, copy);
  try {
    const db = new Sqlite(copy, { readonly: true });
    try {
      return Number((db.prepare(sql).get() as { n: number }).n);
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  } finally {
    rmSync(copy, { force: true });
  }
}

describe('the SQLite checkpointer thread', () => {
  it('keeps the WAL bounded under commits that never checkpoint, and leaves every commit in the database file', async () => {
    expect(existsSync(WORKER), 'run npm run build first').toBe(true);
    const file = path.join(dir, 'state.db');
    const writer = new Sqlite(file);
    writer.pragma('journal_mode = WAL');
    writer.pragma('synchronous = NORMAL');
    writer.pragma('wal_autocheckpoint = 0');
    writer.pragma(`journal_size_limit = ${256 * 1024}`);
    writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
    // A short pause after a refused RESTART: this loop commits back to back, so on a busy machine
    // a RESTART is sometimes refused, and the default 5 s would outlast the loop.
    const worker = new Worker(WORKER, { workerData: { file, intervalMs: 20, restartBytes: 256 * 1024, restartBackoffMs: 50 } });
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    expect(await new Promise((resolve) => worker.once('message', resolve))).toEqual({ kind: 'ready' });

    const insert = writer.prepare('INSERT INTO t (body) VALUES (?)');
    const body = Buffer.alloc(2048, 7);
    let maxWal = 0;
    for (let i = 0; i < 6000; i++) {
      insert.run(body); // one transaction each: 6,000 commits, about 24 MiB of WAL without checkpoints
      if (i % 50 === 49) {
        maxWal = Math.max(maxWal, statSync(`${file}-wal`).size);
        await sleep(5);
      }
    }
    // Restarted past 256 KiB and cut back to it: far from the 24 MiB (a slow machine may let a
    // few MiB pile up between rounds).
    expect(maxWal, `the WAL reached ${maxWal} bytes`).toBeLessThan(12 * 1024 * 1024);
    worker.postMessage('stop');
    expect(await exited).toBe(0);
    // The last round copied everything: the file alone holds every row.
    expect(rowsInFileAlone(file, 'SELECT COUNT(*) AS n FROM t')).toBe(6000);
    writer.close();
  }, 60_000);

  it('never locks the writer out while a reader keeps an old snapshot open; restarts the WAL once it lets go', async () => {
    const file = path.join(dir, 'state.db');
    // A writer that gives up after 1 s of waiting for the write lock, as a server's would.
    const writer = new Sqlite(file, { timeout: 1000 });
    writer.pragma('journal_mode = WAL');
    writer.pragma('synchronous = NORMAL');
    writer.pragma('wal_autocheckpoint = 0');
    writer.pragma(`journal_size_limit = ${64 * 1024}`);
    writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
    const insert = writer.prepare('INSERT INTO t (body) VALUES (?)');
    const body = Buffer.alloc(2048, 7);
    for (let i = 0; i < 50; i++) insert.run(body);
    // A backup tool, or a `sqlite3` shell left in BEGIN: its snapshot pins the WAL.
    const reader = new Sqlite(file);
    reader.exec('BEGIN');
    expect((reader.prepare('SELECT COUNT(*) AS n FROM t').get() as { n: number }).n).toBe(50);

    const worker = new Worker(WORKER, { workerData: { file, intervalMs: 10, restartBytes: 64 * 1024 } });
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    expect(await new Promise((resolve) => worker.once('message', resolve))).toEqual({ kind: 'ready' });
    // Far past the restart size, the WAL pinned: every commit still gets the write lock.
    for (let i = 0; i < 600; i++) {
      insert.run(body);
      if (i % 20 === 19) await sleep(3);
    }
    expect(statSync(`${file}-wal`).size).toBeGreaterThan(1024 * 1024);
    reader.exec('COMMIT');
    reader.close();
    // Let go: within a few rounds (and the 5 s pause after a refused RESTART) the WAL starts
    // over and is cut back to its limit.
    let size = statSync(`${file}-wal`).size;
    for (const started = Date.now(); size > 64 * 1024 && Date.now() - started < 20_000; await sleep(50)) {
      insert.run(body);
      size = statSync(`${file}-wal`).size;
    }
    expect(size).toBeLessThanOrEqual(64 * 1024);
    worker.postMessage('stop');
    expect(await exited).toBe(0);
    writer.close();
  }, 60_000);

  it('a server: its audit rows reach the database file within a second of the last request, though too few for SQLite to checkpoint by itself', async () => {
    const store = await makeStore({ production: { DB_URL: 'checkpointer-db-value' } });
    const server = await startServer(store);
    try {
      const key = await makeApiKey(store, ['production'], ['*']);
      const t = await token(server, key.key, { environment: 'production', key_pattern: 'DB_URL' });
      // 200 reads: a few hundred WAL pages, under SQLite's own 1,000-page threshold.
      for (let round = 0; round < 20; round++) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => call(`${server.url}/api/v1/vault/production/DB_URL`, { auth: t })));
        expect(replies.map((reply) => reply.status)).toEqual(Array(10).fill(200));
      }
      const file = path.join(store.dir, 'state.db');
      let rows: number | undefined;
      for (const started = Date.now(); Date.now() - started < 3000; await sleep(100)) {
        rows = rowsInFileAlone(file, "SELECT COUNT(*) AS n FROM audit WHERE event = 'secret.read'");
        if (rows === 200) break;
      }
      expect(rows).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
      await store.cleanup();
    }
  }, 60_000);
});
