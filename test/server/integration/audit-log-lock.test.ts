// One server per --audit-log file: a second server given the same file, however its path is
// spelled, is refused at start; the lock dies with its holder (SIGKILL included) and is kept
// through logrotate's two modes. Real servers, real files, real signals.
import { spawn } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProcStat } from '../../../src/process/proc-stat.js';
import { BIN, call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';

let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'audit-lock-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
});
afterAll(async () => {
  await store?.cleanup();
});

/** `serve` that is expected to be refused: its exit status and output; stopped if it does start. */
async function refusedStart(auditLog: string, on: TestStore = store, wrap: string[] = []): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
  const [command, ...prefix] = wrap.length > 0 ? [...wrap, process.execPath, BIN] : [BIN];
  const child = spawn(command as string, [...prefix, 'serve', '--store', on.dir, '--port', '0', '--audit-log', auditLog], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.includes('listening')) child.kill('SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { exitCode, stdout, stderr };
}

const inUse = (spelled: string, holder: RunningServer) =>
  `secrets-server: error RWS_AUDIT_LOG_IN_USE: the audit log ${spelled} is written by another server: process ${holder.process.pid} (node) holds its lock ${spelled}.lock (hint: one file per server: give this one an --audit-log of its own, or stop the other one first)\n`;

async function logDir(name: string): Promise<{ dir: string; log: string }> {
  const dir = path.join(store.root, name);
  await mkdir(dir, { mode: 0o700 });
  return { dir, log: path.join(dir, 'audit.jsonl') };
}

describe('a second server on the same --audit-log file', () => {
  it('is refused however the path is spelled; a SIGKILLed holder leaves no lock behind; another file is fine', async () => {
    const { dir, log } = await logDir('same-file');
    const linked = path.join(store.root, 'linked-logs');
    await symlink(dir, linked);
    const first = await startServer(store, ['--audit-log', log]);
    let restarted: RunningServer | undefined;
    let other: RunningServer | undefined;
    try {
      // Through a linked directory, and relative to this process's directory: the same file.
      const viaLink = path.join(linked, 'audit.jsonl');
      const refused = await refusedStart(viaLink);
      expect(refused.exitCode).toBe(1);
      expect(refused.stdout).not.toContain('listening');
      expect(refused.stderr).toBe(inUse(viaLink, first));
      const relative = path.relative(process.cwd(), log);
      expect(relative.startsWith('..')).toBe(true);
      expect((await refusedStart(relative)).stderr).toBe(inUse(relative, first));

      // Another file in the same directory has a lock of its own.
      other = await startServer(store, ['--audit-log', path.join(dir, 'other.jsonl')]);
      await token(other, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect(await readFile(log, 'utf8')).toBe('');

      // A crash frees it at once: nothing to clean up by hand, and no journal left beside the log.
      expect(await first.stop('SIGKILL')).toBe(null);
      restarted = await startServer(store, ['--audit-log', viaLink]);
      await token(restarted, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await readFile(log, 'utf8')).trim().split('\n')).toHaveLength(1);
      expect((await readdir(dir)).sort()).toEqual(['audit.jsonl', 'audit.jsonl.lock', 'other.jsonl', 'other.jsonl.lock']);
      expect((await stat(`${log}.lock`)).mode & 0o777).toBe(0o600);
      expect((await stat(`${log}.lock`)).size).toBe(0);
    } finally {
      await first.stop();
      await restarted?.stop();
      await other?.stop();
    }
  });
});

describe('a start that meets another one passing through the lock', () => {
  // Taking SQLite's write lock passes through its shared lock, so two servers started at the same
  // moment each saw the other's and both were refused (about one time in three, two processes
  // taking it at the same millisecond). Here the other is a reader holding the shared lock until
  // the server has the lock file open: the server waits for it rather than refuse at once.
  const READER = `
    const Sqlite = require(${JSON.stringify(path.resolve('node_modules/better-sqlite3'))});
    const db = new Sqlite(process.argv[1], { fileMustExist: true });
    db.exec('BEGIN');
    db.prepare('SELECT count(*) FROM sqlite_master').get();
    console.log('reading');
    process.stdin.once('data', () => {
      db.exec('COMMIT');
      db.close();
    });`;

  it('starts once that lock is let go, and is not refused', async () => {
    const { log } = await logDir('passing-through');
    await writeFile(`${log}.lock`, '', { mode: 0o600 });
    const reader = execa(process.execPath, ['-e', READER, `${log}.lock`], { stdin: 'pipe' });
    await new Promise<void>((resolve) => reader.stdout?.once('data', () => resolve()));
    const server = spawn(BIN, ['serve', '--store', store.dir, '--port', '0', '--audit-log', log], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    server.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    server.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    try {
      const opened = async () => {
        const fds = await readdir(`/proc/${server.pid}/fd`).catch(() => []);
        const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${server.pid}/fd/${fd}`).catch(() => '')));
        return targets.includes(`${log}.lock`) || server.exitCode !== null;
      };
      // Polled closely: the server waits 250 ms for the lock, and the reader must let go within them.
      const deadline = Date.now() + 10_000;
      while (!(await opened()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
      reader.stdin?.write('go\n');
      await until(async () => stdout.includes('listening') || server.exitCode !== null);
      expect(stderr).toBe('');
      expect(stdout).toContain('listening');
    } finally {
      server.kill('SIGTERM');
      await exited;
      reader.stdin?.end();
      await reader;
    }
  });
});

describe('a holder that is stopped', () => {
  it('is named so, and the hint says to continue or end it, not to stop it', async () => {
    const { log } = await logDir('stopped-holder');
    const first = await startServer(store, ['--audit-log', log]);
    const pid = first.process.pid as number;
    try {
      first.process.kill('SIGSTOP');
      await until(async () => parseProcStat(await readFile(`/proc/${pid}/stat`, 'latin1'))?.state === 'T');
      const refused = await refusedStart(log);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toBe(
        `secrets-server: error RWS_AUDIT_LOG_IN_USE: the audit log ${log} is written by another server: process ${pid} (node, stopped) holds its lock ${log}.lock (hint: one file per server: give this one an --audit-log of its own; a stopped process keeps the lock until it is continued or ends: continue it (kill -CONT ${pid}) or end it first)\n`,
      );
    } finally {
      first.process.kill('SIGCONT');
      expect(await first.stop()).toBe(0);
    }
  });
});

describe('a lock file that cannot be trusted', () => {
  it('is refused at start: one others may open (they could hold it), a link', async () => {
    const { dir, log } = await logDir('bad-lock');
    await writeFile(`${log}.lock`, '', { mode: 0o644 });
    await chmod(`${log}.lock`, 0o644);
    const open = await refusedStart(log);
    expect(open.exitCode).toBe(1);
    expect(open.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log's lock file ${log}.lock is open to others (mode 644) (hint: chmod 600 ${log}.lock)\n`);
    await rm(`${log}.lock`);
    await symlink(path.join(dir, 'elsewhere'), `${log}.lock`);
    const link = await refusedStart(log);
    expect(link.exitCode).toBe(1);
    expect(link.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log's lock file ${log}.lock is not a regular file (a link is never followed) (hint: move it away: it is made again, empty)\n`);
    expect(await readdir(dir)).not.toContain('elsewhere');
  });
});

describe.skipIf(process.getuid?.() !== 0)('a lock file of the wrong owner or mode', () => {
  const NOBODY = 65534;
  const AS_NOBODY = ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'];

  it('0400 (SQLite opened it read-only and shared a read lock with a second server) and another user\'s are refused at start', async () => {
    const own = await makeStore({ production: { SERVICE_B_KEY: 'audit-lock-value' } });
    try {
      await chmod(own.root, 0o711);
      for (const name of ['', ...(await readdir(own.dir))]) await chown(path.join(own.dir, name), NOBODY, NOBODY);
      const dir = path.join(own.root, 'logs');
      await mkdir(dir, { mode: 0o700 });
      await chown(dir, NOBODY, NOBODY);
      const log = path.join(dir, 'audit.jsonl');
      await writeFile(`${log}.lock`, '', { mode: 0o400 });
      await chown(`${log}.lock`, NOBODY, NOBODY);
      const readOnly = await refusedStart(log, own, AS_NOBODY);
      expect(readOnly.exitCode).toBe(1);
      expect(readOnly.stdout).not.toContain('listening');
      expect(readOnly.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log's lock file ${log}.lock is not readable and writable by its owner (mode 400) (hint: chmod 600 ${log}.lock)\n`);

      // Root's server, and a lock file its owner (nobody) may open and hold whenever it likes.
      await chmod(`${log}.lock`, 0o600);
      const others = await refusedStart(log, own);
      expect(others.exitCode).toBe(1);
      expect(others.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log's lock file ${log}.lock belongs to uid ${NOBODY}, not to the server's user (uid 0) (hint: chown 0 ${log}.lock (it stays empty), or move it away: it is made again)\n`);

      // Its own user's, 0600: one server, and the second refused.
      const first = await startServer(own, ['--audit-log', log], {}, AS_NOBODY);
      try {
        const second = await refusedStart(log, own, AS_NOBODY);
        expect(second.exitCode).toBe(1);
        expect(second.stderr).toBe(inUse(log, first));
      } finally {
        expect(await first.stop()).toBe(0);
      }
    } finally {
      await own.cleanup();
    }
  });
});

describe.skipIf(process.getuid?.() !== 0)('a log made writable alone on a read-only mount', () => {
  // As systemd's ProtectSystem=strict with ReadWritePaths= naming the log, or a container's bind
  // mount of the file: SQLite opened a lock file there read-only, without a word, and two servers
  // both started on the log.
  it('is refused at start, whether the lock file is there or would have to be made', async () => {
    const { dir } = await logDir('read-only-mount');
    const mount = path.join(dir, 'mnt');
    const writable = path.join(dir, 'writable.jsonl');
    const log = path.join(mount, 'audit.jsonl');
    await mkdir(mount);
    await writeFile(writable, '', { mode: 0o600 });
    const hint = `the lock lives beside the log: make ${mount} writable for the server (systemd: ReadWritePaths= that directory, not the log alone), or give --audit-log a path on a writable file system`;
    for (const lockFile of [true, false]) {
      await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=700', 'tmpfs', mount]);
      try {
        await writeFile(log, '', { mode: 0o600 });
        if (lockFile) await writeFile(`${log}.lock`, '', { mode: 0o600 });
        await execa('mount', ['-o', 'remount,ro', mount]);
        await execa('mount', ['--bind', writable, log]);
        const refused = await refusedStart(log);
        expect(refused.exitCode).toBe(1);
        expect(refused.stdout).not.toContain('listening');
        expect(refused.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log's lock file ${log}.lock cannot be ${lockFile ? 'written' : 'made'}: read-only file system (EROFS) (hint: ${hint})\n`);
      } finally {
        await execa('umount', ['-R', mount]);
      }
    }
  });
});

describe('the lock under logrotate', () => {
  it('create mode: the moved log keeps the lock at its path, and a lock file moved with it is followed at the SIGHUP', async () => {
    const { log } = await logDir('create-mode');
    const first = await startServer(store, ['--audit-log', log]);
    try {
      await token(first, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      // The log is moved and a new one made; the server still writes the old one until its SIGHUP.
      await rename(log, `${log}.1`);
      await writeFile(log, '', { mode: 0o600 });
      expect((await refusedStart(log)).stderr).toBe(inUse(log, first));
      // A pattern that matches the lock file too (`*`) moves it and makes a new, empty one.
      await rename(`${log}.lock`, `${log}.lock.1`);
      await writeFile(`${log}.lock`, '', { mode: 0o600 });
      first.process.kill('SIGHUP');
      await until(async () => first.stderr().includes('audit log reopened'));
      expect((await refusedStart(log)).stderr).toBe(inUse(log, first));
      await token(first, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await readFile(log, 'utf8')).trim().split('\n')).toHaveLength(1);
    } finally {
      expect(await first.stop()).toBe(0);
    }
  });

  it('copytruncate: the log and its lock file copied and truncated in place keep the lock', async () => {
    const { log } = await logDir('copytruncate');
    const first = await startServer(store, ['--audit-log', log]);
    try {
      await token(first, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      for (const file of [log, `${log}.lock`]) {
        await copyFile(file, `${file}.1`);
        await truncate(file, 0);
      }
      expect((await refusedStart(log)).stderr).toBe(inUse(log, first));
    } finally {
      expect(await first.stop()).toBe(0);
    }
  });

  it('a log directory removed and made again: the log and its lock are made again with the next row', async () => {
    const { dir, log } = await logDir('removed-dir');
    const first = await startServer(store, ['--audit-log', log]);
    try {
      const t = await token(first, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      await rm(dir, { recursive: true });
      await mkdir(dir, { mode: 0o700 });
      expect((await call(`${first.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      expect((await readdir(dir)).sort()).toEqual(['audit.jsonl', 'audit.jsonl.lock']);
      expect((await refusedStart(log)).stderr).toBe(inUse(log, first));
    } finally {
      expect(await first.stop()).toBe(0);
    }
  });
});
