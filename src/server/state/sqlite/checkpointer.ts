// A serving process's SQLite checkpoints, on a thread of their own. SQLite's automatic checkpoint
// runs inside the commit that crosses its threshold: on the event loop, copying pages and fsyncing
// both files while every request waits (≈15–20 µs of each read under load, measured). Here a
// second connection copies the WAL into the database every `intervalMs` instead. PASSIVE never
// waits for the server's writer, but under steady writes it rarely catches the WAL whole, so the
// WAL could only grow; past `restartBytes` a RESTART right after a PASSIVE round lets the next
// commit start the WAL from the beginning. A RESTART holds the write lock while it copies the last
// frames and waits for readers, so it waits a few milliseconds at most and, refused, is not tried
// again for a while: a reader that keeps an old snapshot open (a `sqlite3` shell, a backup tool)
// must never lock the servers' writers out. Commits are durable in the WAL either way: a
// checkpoint moves them, it never decides whether they are kept.
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Sqlite from 'better-sqlite3';

export interface CheckpointerData {
  file: string;
  /** How often the WAL is copied into the database (default 200 ms). */
  intervalMs?: number;
  /** A WAL this large is restarted, not only copied (default 16 MiB; the writer waits a few ms). */
  restartBytes?: number;
  /**
   * After a refused RESTART, PASSIVE only for this long (default 5 s): under steady writes the WAL
   * may then grow past `restartBytes` by what this long of commits writes.
   */
  restartBackoffMs?: number;
}

const { file, intervalMs = 200, restartBytes = 16 * 1024 * 1024, restartBackoffMs = 5_000 } = workerData as CheckpointerData;
const port = parentPort ?? fail('checkpointer.js runs as a worker thread');

function fail(message: string): never {
  throw new Error(message);
}

let db: Sqlite.Database;
try {
  // Busy: skip the round (the next one comes soon); only a RESTART waits, and only milliseconds.
  db = new Sqlite(file, { timeout: 0 });
  db.pragma('synchronous = NORMAL');
} catch (error) {
  port.postMessage({ kind: 'failed', code: (error as { code?: unknown }).code ?? 'error' });
  throw error;
}

function walBytes(): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}

/** Milliseconds a RESTART may hold the write lock waiting for readers. */
const RESTART_WAIT_MS = 5;
/** Failures other than busy in a row after which the thread ends, and commits checkpoint again. */
const MAX_FAILURES = 20;

let restartNotBefore = 0;
let failures = 0;
let stopped = false;
let timer: NodeJS.Timeout | undefined;

/** SQLite's answer to `PRAGMA wal_checkpoint`: busy is 1 when it could not finish. */
type CheckpointRow = { busy: number; log: number; checkpointed: number };

function checkpoint(): void {
  try {
    // PASSIVE first: it copies nearly everything without holding the writers up, so that the
    // RESTART after it holds the write lock only for the last few frames.
    db.pragma('wal_checkpoint(PASSIVE)');
    if (walBytes() > restartBytes && Date.now() >= restartNotBefore) {
      db.pragma(`busy_timeout = ${RESTART_WAIT_MS}`);
      try {
        const restart = db.pragma('wal_checkpoint(RESTART)') as CheckpointRow[];
        if (restart[0]?.busy !== 0) restartNotBefore = Date.now() + restartBackoffMs;
      } finally {
        db.pragma('busy_timeout = 0');
      }
    }
    failures = 0;
  } catch (error) {
    const code = String((error as { code?: unknown }).code ?? 'error');
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return;
    // A full disk may pass; a database that keeps failing is left to SQLite's own checkpoints.
    if (++failures >= MAX_FAILURES) {
      port.postMessage({ kind: 'failed', code });
      stopped = true;
      db.close();
      port.close();
    }
  }
}

/** The next round is timed from the end of this one: rounds never queue up behind a slow one. */
function schedule(): void {
  if (stopped) return;
  timer = setTimeout(() => {
    checkpoint();
    schedule();
  }, intervalMs);
}

port.on('message', (message: unknown) => {
  if (message !== 'stop' || stopped) return;
  stopped = true;
  clearTimeout(timer);
  checkpoint();
  db.close();
  port.close();
});
port.postMessage({ kind: 'ready' });
schedule();
