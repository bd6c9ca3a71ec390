// The `--audit-log` file under an operator's hands: a pipe to a log shipper (with its reader
// gone), logrotate's copytruncate, the file deleted while serving. Real processes, real FIFOs,
// real signals: the server goes on answering (503 when a row cannot be written), never hangs.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Agent } from 'undici';
import { call, cli, generate, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

const run = promisify(execFile);
let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'audit-file-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
});
afterAll(async () => {
  await store?.cleanup();
});

/** A log shipper: `cat` reading the pipe, its output collected; resolves once it has the pipe open. */
async function shipper(fifo: string): Promise<{ process: ChildProcess; lines: () => string[] }> {
  // `0<>`: opened read-write, which never waits for a writer (cat's own open(2) would, and
  // could not be told apart from a reader that has the pipe).
  const child = spawn('sh', ['-c', 'exec cat 0<>"$1"', 'sh', fifo], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const fds = `/proc/${child.pid}/fd`;
  await until(async () => (await Promise.all((await readdir(fds).catch(() => [])).map((fd) => readlink(path.join(fds, fd)).catch(() => '')))).includes(fifo));
  return { process: child, lines: () => text.split('\n').filter((line) => line !== '') };
}

describe('a pipe as --audit-log', () => {
  it('is refused at start and kept out at SIGHUP while no process reads it, instead of blocking the server in open(2)', async () => {
    const fifo = path.join(store.root, 'audit.fifo');
    await run('mkfifo', [fifo]);
    const refused = await cli(['serve', '--store', store.dir, '--port', '0', '--audit-log', fifo]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).not.toContain('listening');
    expect(refused.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: the audit log ${fifo} is a pipe no process reads (ENXIO) (hint: start the log shipper that reads the pipe first, or give --audit-log a regular file)\n`);

    const first = await shipper(fifo);
    const server = await startServer(store, ['--audit-log', fifo]);
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      await until(async () => first.lines().length === 1);
      expect(JSON.parse(first.lines()[0] as string)).toMatchObject({ event: 'token.generate', outcome: 'success' });
      // The shipper goes away and logrotate's postrotate sends SIGHUP before it is back: the
      // server used to block in open(2) for good, deaf to requests and to SIGTERM.
      first.process.kill();
      await new Promise((resolve) => first.process.once('exit', resolve));
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('kept the old audit log'));
      expect(server.stderr()).toContain(`SIGHUP, kept the old audit log: RWS_FILE_ACCESS: the audit log ${fifo} is a pipe no process reads (ENXIO)`);
      expect((await call(`${server.url}/healthz`)).status).toBe(200);
      // Fail closed: the old pipe has no reader, so nothing is served.
      const unrecorded = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      expect(unrecorded.status).toBe(503);
      expect(unrecorded.body.error.code).toBe('RWS_AUDIT_UNAVAILABLE');
      // Nothing was done: the client may send it again, and is told when.
      expect(unrecorded.headers.get('retry-after')).toBe('1');
      // The shipper is back: the next SIGHUP opens the pipe again and rows flow to it.
      const second = await shipper(fifo);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('audit log reopened'));
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      await until(async () => second.lines().length === 1);
      expect(JSON.parse(second.lines()[0] as string)).toMatchObject({ event: 'secret.read', outcome: 'success' });
      expect(await server.stop()).toBe(0);
      second.process.kill();
    } finally {
      await server.stop();
    }
  });
});

describe('a regular file as --audit-log', () => {
  it('deleted while serving is made again at its path with the next row, not written into the deleted file', async () => {
    const sink = path.join(store.root, 'deleted-audit.jsonl');
    const server = await startServer(store, ['--audit-log', sink]);
    const rowsOf = async (file: string) => (await readFile(file, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as { seq: number; event: string });
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      const before = await rowsOf(sink);
      expect(before.map((row) => row.event)).toEqual(['token.generate']);
      // An operator frees space: the rows after it went into the deleted file, unseen by anyone.
      await rm(sink);
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      const after = await rowsOf(sink);
      expect(after.map((row) => row.event)).toEqual(['secret.read']);
      expect(after[0]?.seq).toBe((before[0]?.seq ?? 0) + 1);
      expect((await stat(sink)).mode & 0o777).toBe(0o600);
      // Deleted again, and something that cannot be written in its place: fail closed.
      await rm(sink);
      await mkdir(sink);
      const refused = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('RWS_AUDIT_UNAVAILABLE');
      expect(refused.text).not.toContain('audit-file-value');
      await rm(sink, { recursive: true });
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      expect((await rowsOf(sink)).map((row) => row.event)).toEqual(['secret.read']);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    expect((await cli(['audit', 'verify', '--store', store.dir])).exitCode).toBe(0);
  });
});

describe('an --audit-log file that cannot be written', () => {
  it('logs the first refusal in full (the path, the errno in words, a hint), counts the rest, and says once when rows are written again', async () => {
    const dir = path.join(store.root, 'audit-logs');
    await mkdir(dir, { mode: 0o700 });
    const sink = path.join(dir, 'audit.jsonl');
    const server = await startServer(store, ['--audit-log', sink]);
    const read = async (t: string) => (await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status;
    const said = (pattern: RegExp) => server.stderr().split('\n').filter((line) => pattern.test(line));
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      // A cleanup removes the log directory: every request is refused, and each logged the same
      // bare `AuditSinkError RWS_AUDIT_UNAVAILABLE`, naming no file and no cause.
      await rm(dir, { recursive: true });
      for (let i = 0; i < 10; i++) expect(await read(t)).toBe(503);
      expect(said(/RWS_AUDIT_UNAVAILABLE/)).toEqual([
        `secrets-server: error RWS_AUDIT_UNAVAILABLE: the audit log ${sink} was deleted and could not be made again: no such file or directory (ENOENT) (hint: its directory ${dir} is gone: make it again; requests are refused (503) until then)`,
      ]);
      await mkdir(dir, { mode: 0o700 });
      expect(await read(t)).toBe(200);
      expect(await read(t)).toBe(200);
      expect(said(/written again/)).toEqual([expect.stringMatching(new RegExp(`^secrets-server: the audit log ${sink} is written again after [\\d.]+ s; 10 requests were refused meanwhile$`))]);
      expect(server.stderr()).not.toContain('AuditSinkError');
      expect(server.stderr()).not.toContain('audit-file-value');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('counts the folded 429 rows it could not write with the refused requests, instead of a line per client', async () => {
    const dir = path.join(store.root, 'audit-logs-429');
    await mkdir(dir, { mode: 0o700 });
    const sink = path.join(dir, 'audit.jsonl');
    const server = await startServer(store, ['--audit-log', sink]);
    const clients = [31, 32, 33].map((n) => new Agent({ localAddress: `127.0.0.${n}` }));
    try {
      await rm(dir, { recursive: true });
      // Wrong keys until each client is limited: their refusals (503 here, no row could be
      // written) count toward the 429 all the same, and the 429s are folded into a row per client.
      for (const [n, client] of clients.entries()) {
        const statuses: number[] = [];
        for (let i = 0; i < 22; i++) statuses.push((await generate(server, `rws_sk_${(n * 100 + i).toString(16).padStart(32, '0')}`, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, client)).status);
        expect(statuses.at(-1)).toBe(429);
      }
      // Stopping writes the folded rows: each failed and logged its own line, calling the
      // audit file's failure RWS_STATE_UNAVAILABLE. Now they are counted, and said in one line
      // with the 63 refused requests (21 a client; the 22nd was the 429).
      expect(await server.stop()).toBe(0);
      const said = server.stderr().split('\n').filter((line) => line.includes('RWS_AUDIT_UNAVAILABLE'));
      expect(said).toHaveLength(2);
      expect(said[1]).toMatch(new RegExp(`^secrets-server: error RWS_AUDIT_UNAVAILABLE: stopping while the audit log ${sink} still cannot be written after [\\d.]+ s; 63 requests refused and 3 folded 429 audit rows not written$`));
      expect(server.stderr().split('\n').filter((line) => line.includes('folded 429'))).toHaveLength(1);
    } finally {
      await server.stop();
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});

/** logrotate's copytruncate, as it does it: a copy, then the live file truncated to 0 by another process. */
async function copytruncate(file: string, rotated: string): Promise<void> {
  await copyFile(file, rotated);
  await run('truncate', ['-s', '0', file]);
}

const linesOf = (text: string) => text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { seq: number; event: string; outcome: string });

describe('--audit-log under logrotate copytruncate (PostgreSQL state: the server writes no other file)', () => {
  let db: { url: string; drop(): Promise<void> };
  let env: Record<string, string>;
  let key: string;
  beforeAll(async () => {
    db = await testDatabase();
    env = { RWS_DATABASE_URL: db.url };
    key = (await makeApiKey(store, ['production'], ['SERVICE_B_*'], [], env)).key;
  }, 60_000);
  afterAll(async () => {
    await db?.drop();
  });

  async function sql(client: pg.Client | undefined, text: string): Promise<void> {
    const own = client ?? new pg.Client({ connectionString: db.url });
    if (client === undefined) await own.connect();
    try {
      await own.query(text);
    } finally {
      if (client === undefined) await own.end();
    }
  }

  it('a commit that fails after the file was truncated takes nothing back: no zeros, and the next row starts the new file', async () => {
    const sink = path.join(store.root, 'copytruncate-commit.jsonl');
    const server = await startServer(store, ['--audit-log', sink], env);
    // The test's session holds an advisory lock that a deferred trigger waits for inside the
    // COMMIT, then refuses it: the row's line is written, and the commit fails when the test says.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      const before = (await stat(sink)).size;
      expect(linesOf(await readFile(sink, 'utf8')).map((row) => row.event)).toEqual(['token.generate', 'secret.read']);
      await sql(undefined, `CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(7, 7); RAISE EXCEPTION 'refused by the test'; END $$;
        CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON audit DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();`);
      // Unrotated, the refused commit's line is taken back, to the byte.
      const unrotated = await readFile(sink);
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(503);
      expect(await readFile(sink)).toEqual(unrotated);
      await sql(holder, 'SELECT pg_advisory_lock(7, 7)');
      const refused = call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      // Its line is in the file before its COMMIT is sent; logrotate rotates now.
      await until(async () => (await stat(sink)).size > before);
      await copytruncate(sink, `${sink}.1`);
      await sql(holder, 'SELECT pg_advisory_unlock(7, 7)');
      const reply = await refused;
      expect(reply.status).toBe(503);
      await sql(undefined, 'DROP TRIGGER refuse_commit ON audit; DROP FUNCTION refuse_commit()');
      // The take-back used to cut the file "back" to its size before the write: the emptied file
      // became that many zero bytes, and the next rows were appended after them.
      const after = await readFile(sink);
      expect(after.includes(0)).toBe(false);
      expect(after.length).toBe(0);
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      const text = await readFile(sink, 'utf8');
      expect(text).not.toContain('\u0000');
      expect(linesOf(text).map((row) => [row.event, row.outcome])).toEqual([['secret.read', 'success']]);
      // The rotated copy holds whole lines: the two rows before, and the line of the refused
      // commit that was copied before it failed (a rotation cannot be taken back).
      expect(linesOf(await readFile(`${sink}.1`, 'utf8')).map((row) => row.event)).toEqual(['token.generate', 'secret.read', 'secret.read']);
    } finally {
      await holder.end();
      expect(await server.stop()).toBe(0);
    }
    expect((await cli(['audit', 'verify', '--store', store.dir], { env })).exitCode).toBe(0);
  }, 60_000);

  it('a write cut short (RLIMIT_FSIZE: EFBIG) is cut back to its last whole line, and after a copytruncate rows continue at the new end', async () => {
    const sink = path.join(store.root, 'copytruncate-full.jsonl');
    // A file size limit on the server alone; node ignores SIGXFSZ, so the write fails with EFBIG
    // after the bytes that fit, as on a full disk. PostgreSQL state: the sink is its only file.
    const limit = 2048;
    const server = await startServer(store, ['--audit-log', sink], env, ['prlimit', `--fsize=${limit}`, '--']);
    try {
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      const statuses: number[] = [];
      for (let i = 0; i < 20 && !statuses.includes(503); i++) statuses.push((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status);
      expect(statuses.at(-1)).toBe(503);
      expect(server.stderr()).toContain(`secrets-server: error RWS_AUDIT_UNAVAILABLE: the audit log ${sink} could not be written: file too large (EFBIG) (hint: the file reached the largest size allowed (ulimit -f, or the file system): rotate it)\n`);
      const full = await readFile(sink, 'utf8');
      expect(full.endsWith('\n')).toBe(true);
      expect(full.length).toBeLessThan(limit);
      expect(linesOf(full)).toHaveLength(statuses.length);
      await copytruncate(sink, `${sink}.1`);
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).status).toBe(200);
      const fresh = await readFile(sink, 'utf8');
      expect(linesOf(fresh).map((row) => [row.event, row.outcome])).toEqual([['secret.read', 'success']]);
      expect(linesOf(fresh)[0]?.seq).toBeGreaterThan(linesOf(full).at(-1)?.seq ?? Infinity);
    } finally {
      expect(await server.stop()).toBe(0);
    }
    expect((await cli(['audit', 'verify', '--store', store.dir], { env })).exitCode).toBe(0);
  }, 60_000);
});
