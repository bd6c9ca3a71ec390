// A serving process's SQLite checkpoints, on a thread of their own. SQLite's automatic checkpoint
// runs inside the commit that crosses its threshold: on the event loop, copying pages and fsyncing
// both files while every request waits (≈15–20 µs of each read under load, measured). Here a
// second connection copies the WAL into the database every `intervalMs` instead. PASSIVE never
// waits for the server's writer, but under steady writes it rarely catches the WAL whole, so the
// WAL could only grow; past `restartBytes` one RESTART checkpoint waits for the writer's current
// transaction and lets the next one start the WAL from the beginning. Commits are durable in the
// WAL either way: a checkpoint moves them, it never decides whether they are kept.
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Sqlite from 'better-sqlite3';

export interface CheckpointerData {
  file: string;
  /** How often the WAL is copied into the database (default 200 ms). */
  intervalMs?: number;
  /** A WAL this large is restarted, not only copied (default 16 MiB; the writer waits a few ms). */
  restartBytes?: number;
}

const { file, intervalMs = 200, restartBytes = 16 * 1024 * 1024 } = workerData as CheckpointerData;
const port = parentPort;
if (port === null) throw new Error('checkpointer.js runs as a worker thread');

let db: Sqlite.Database;
try {
  // Busy: skip the round (the next one comes soon); only a RESTART waits, and briefly.
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

function checkpoint(): void {
  try {
    if (walBytes() > restartBytes) {
      db.pragma('busy_timeout = 1000');
      try {
        db.pragma('wal_checkpoint(RESTART)');
      } finally {
        db.pragma('busy_timeout = 0');
      }
    } else {
      db.pragma('wal_checkpoint(PASSIVE)');
    }
  } catch {
    // Busy, or the disk is full: the WAL keeps the commits, and the next round tries again.
  }
}

const timer = setInterval(checkpoint, intervalMs);
port.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  port.close();
});
port.postMessage({ kind: 'ready' });
