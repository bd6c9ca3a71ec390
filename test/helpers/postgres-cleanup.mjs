// Stops the servers of a test run and deletes its run dir (test/helpers/postgres-server.ts).
//   node postgres-cleanup.mjs RUN_DIR PG_CTL            now: the globalSetup's teardown
//   node postgres-cleanup.mjs RUN_DIR PG_CTL WATCH_PID  once process WATCH_PID is gone
// The second form runs detached beside vitest: on Ctrl-C vitest exits without teardowns (and
// npm forwards a second SIGINT that kills it outright), and nothing runs when it is killed; the
// servers, started by pg_ctl in sessions of their own, would outlive it.
// Plain JavaScript, so that it runs on a bare node.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const [runDir, pgCtl, watchPid] = process.argv.slice(2);
if (!runDir) throw new Error('usage: postgres-cleanup.mjs RUN_DIR PG_CTL [WATCH_PID]');

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

function cleanup() {
  let entries;
  try {
    entries = readdirSync(runDir);
  } catch {
    return;
  }
  // pg_ctl refuses to run as root.
  const ids =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
          gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
        }
      : {};
  for (const entry of entries) {
    const dataDir = join(runDir, entry, 'data');
    if (!pgCtl || !existsSync(join(dataDir, 'postmaster.pid'))) continue;
    // Immediate: the data is deleted next, a clean shutdown's checkpoint would be wasted time.
    spawnSync(pgCtl, ['stop', '-w', '-m', 'immediate', '-D', dataDir], { ...ids, stdio: 'ignore', timeout: 30_000 });
  }
  // Retries: on Ctrl-C a worker's cp of the template may still be writing into a data dir. A
  // server such a worker starts afterwards stops by itself: PostgreSQL shuts down within a minute
  // once the lock file in its data dir is gone.
  try {
    rmSync(runDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch (error) {
    process.stderr.write(`test PostgreSQL: could not remove ${runDir}: ${error.message}\n`);
    process.exitCode = 1;
  }
}

if (!watchPid) {
  cleanup();
} else {
  const timer = setInterval(() => {
    // Teardown ran: nothing left to watch.
    if (!existsSync(runDir)) return clearInterval(timer);
    if (alive(Number(watchPid))) return;
    clearInterval(timer);
    cleanup();
  }, 500);
}
