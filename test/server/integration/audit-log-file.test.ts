// The `--audit-log` file under an operator's hands: a pipe to a log shipper (with its reader
// gone), logrotate's copytruncate, the file deleted while serving. Real processes, real FIFOs,
// real signals: the server goes on answering (503 when a row cannot be written), never hangs.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cli, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';

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
