// Several processes on one SQLite store: servers (one in its own PID namespace), admin commands
// killed half-way, state deleted or rolled back, a tampered audit trail and a full disk.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readWhileKilling } from '../helpers/kill-under-load.js';
import { storePaths } from '../../../src/server/store/layout.js';
import { whileStateLocked } from '../state/conformance.js';
import { testDatabase } from '../../helpers/postgres.js';
import { BIN, call, cli, cliOk, generate, makeApiKey, makeStore, startServer, type TestStore, token } from '../helpers/server.js';

const run = promisify(execFile);
const SECRETS = { production: { SERVICE_B_KEY: 'b-key-value', SERVICE_B_URL: 'https://b' } };
const unshareWorks = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore(SECRETS);
  ({ key: apiKey } = await makeApiKey(store, ['production'], ['SERVICE_B_*']));
});
afterAll(() => store.cleanup());

async function auditRows(dir: string): Promise<any[]> {
  return (await cliOk(['audit', '--json', '--limit', '10000', '--store', dir])).trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

const read = (server: { url: string }, t: string) => call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });

describe('two servers on one SQLite store', () => {
  it.each([
    ['in one PID namespace', []],
    ['in separate PID namespaces', ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child=SIGTERM']],
  ] as Array<[string, string[]]>)('count 300 racing uses of a limit-50 token exactly, %s', async (name, wrap) => {
    if (wrap.length > 0 && !unshareWorks) return void console.warn(`skipped (${name}): unshare is refused here`);
    const servers = [await startServer(store), await startServer(store, [], {}, wrap)];
    try {
      const t = await token(servers[0] as { url: string }, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 50 });
      const replies = await Promise.all(Array.from({ length: 300 }, (_, index) => read(servers[index % 2] as { url: string }, t)));
      expect(replies.filter((reply) => reply.status === 200)).toHaveLength(50);
      // The rest are refused: spent (401), or, once an address has had 20 401s, rate-limited (429).
      const refused = replies.filter((reply) => reply.status === 401);
      expect(refused.every((reply) => reply.body.error.code === 'RWS_TOKEN_EXHAUSTED')).toBe(true);
      expect(refused.length + replies.filter((reply) => reply.status === 429).length).toBe(250);
      const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti;
      const rows = (await auditRows(store.dir)).filter((row) => row.jti === jti && row.event === 'secret.read');
      expect(rows.filter((row) => row.outcome === 'success')).toHaveLength(50);
      expect(rows).toHaveLength(50);
      expect((await auditRows(store.dir)).filter((row) => row.jti === jti && row.event === 'auth.failure')).toHaveLength(refused.length);
    } finally {
      // unshare waits out SIGTERM; SIGKILL ends it, and --kill-child passes SIGTERM to the server.
      await Promise.all(servers.map((server, index) => server.stop(index === 1 && wrap.length > 0 ? 'SIGKILL' : 'SIGTERM')));
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await cli(['audit', 'verify', '--store', store.dir])).exitCode).toBe(0);
  });

  it('see a revocation made through the other at the next request', async () => {
    const [a, b] = [await startServer(store), await startServer(store)];
    try {
      const t = await token(a, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await read(b, t)).status).toBe(200);
      expect((await call(`${a.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: t })).status).toBe(204);
      expect((await read(b, t)).body.error.code).toBe('RWS_TOKEN_REVOKED');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('a server SIGKILLed under load', () => {
  it('loses and double-counts nothing: every charged use has its success row', async () => {
    const [survivor, victim] = [await startServer(store), await startServer(store)];
    try {
      const t = await token(survivor, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 100_000 });
      const { ok, failed } = await readWhileKilling([survivor, victim], victim, (server) => read(server, t));
      expect(failed).toBeGreaterThan(0);
      const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti;
      const successRows = (await auditRows(store.dir)).filter((row) => row.jti === jti && row.event === 'secret.read' && row.outcome === 'success').length;
      const { default: Sqlite } = await import('better-sqlite3');
      const db = new Sqlite(path.join(store.dir, 'state.db'), { readonly: true });
      const uses = (db.prepare('SELECT uses FROM tokens WHERE jti = ?').get(jti) as { uses: number }).uses;
      db.close();
      expect(uses).toBe(successRows);
      expect(successRows).toBeGreaterThanOrEqual(ok);
      expect(successRows).toBeLessThanOrEqual(ok + failed);
    } finally {
      await survivor.stop();
    }
    expect((await cli(['audit', 'verify', '--store', store.dir])).exitCode).toBe(0);
  }, 60_000);
});

describe('admin commands at once, some killed', () => {
  // The same 50 commands against each kind of state: SQLite's write lock and lock file, and
  // PostgreSQL's transactions and edit-lock sessions (a session and a thread of their own).
  async function atOnce(env: Record<string, string>): Promise<void> {
    const local = await makeStore({ team: { SEED: 'x' } });
    try {
      const doomed = await Promise.all(Array.from({ length: 10 }, () => makeApiKey(local, ['team'], ['DB_*'], [], env)));
      type Job = { kind: 'create' | 'revoke' | 'set'; arg: string; args: string[]; input?: string };
      const jobs: Job[] = [
        ...Array.from({ length: 20 }, (_, i): Job => ({ kind: 'create', arg: `bulk-${i}`, args: ['apikey', 'create', '--name', `bulk-${i}`, '--environment', 'team', '--key-pattern', 'DB_*'] })),
        ...doomed.map(({ id }): Job => ({ kind: 'revoke', arg: id, args: ['apikey', 'revoke', id] })),
        ...Array.from({ length: 20 }, (_, i): Job => ({ kind: 'set', arg: `VALUE_${i}`, args: ['secret', 'set', 'team', `VALUE_${i}`], input: `v${i}` })),
      ];
      const results = await Promise.all(
        jobs.map(
          (job, index) =>
            new Promise<{ job: Job; code: number | null; stdout: string }>((resolve) => {
              const child = spawn(BIN, [...job.args, '--store', local.dir], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
              let stdout = '';
              child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
              child.stdin.end(job.input ?? '');
              // A third are killed at some point of their run: before, during or after their write.
              if (index % 3 === 0) setTimeout(() => child.kill('SIGKILL'), 150 + ((index * 37) % 400));
              child.on('exit', (code) => resolve({ job, code, stdout }));
            }),
        ),
      );
      const ok = results.filter((result) => result.code === 0);
      expect(ok.length).toBeGreaterThan(25);
      expect(results.some((result) => result.code === null)).toBe(true);
      const keys = (await cliOk(['apikey', 'list', '--json', '--store', local.dir], { env })).trim().split('\n').map((line) => JSON.parse(line));
      const names = (await cliOk(['secret', 'list', 'team', '--store', local.dir], { env })).trim().split('\n');
      for (const { job, stdout } of ok) {
        if (job.kind === 'create') expect(keys.find((k) => k.id === /^id: (\S+)$/m.exec(stdout)?.[1])?.name).toBe(job.arg);
        if (job.kind === 'revoke') expect(keys.find((k) => k.id === job.arg)?.revoked_at).not.toBeNull();
        if (job.kind === 'set') expect(names).toContain(job.arg);
      }
      expect((await readdir(local.dir)).filter((file) => file.endsWith('.lock'))).toEqual([]);
      // And the next command is not held up by anything the killed ones left.
      expect((await cli(['secret', 'set', 'team', 'AFTER', '--store', local.dir], { input: 'y', env })).exitCode).toBe(0);
      expect((await cli(['audit', 'verify', '--store', local.dir], { env })).exitCode).toBe(0);
    } finally {
      await local.cleanup();
    }
  }

  it('every command that exited 0 took effect, and no lock is left behind', () => atOnce({}), 120_000);

  it('with PostgreSQL: every command that exited 0 took effect, and no lock or lock session is left behind', async () => {
    const db = await testDatabase();
    try {
      await atOnce({ RWS_DATABASE_URL: db.url });
      // Killed edits leave no lock session behind: one that held the lock ends with its
      // connection; one cut off while waiting ends by its lock_timeout at the latest (a backend
      // waiting on a lock does not notice its client is gone).
      const { default: pg } = await import('pg');
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        const sessions = async () => (await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'secrets-server edit pid %'")).rows[0].n as number;
        const deadline = Date.now() + 20_000;
        while ((await sessions()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
        expect(await sessions()).toBe(0);
      } finally {
        await client.end();
      }
    } finally {
      await db.drop();
    }
  }, 180_000);
});

describe('lost or rolled-back state', () => {
  it('refuses every earlier token when the state is deleted', async () => {
    const local = await makeStore(SECRETS);
    try {
      const { key } = await makeApiKey(local, ['production'], ['SERVICE_B_*']);
      let server = await startServer(local);
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await read(server, t)).status).toBe(200);
      await server.stop();
      for (const file of ['state.db', 'state.db-wal', 'state.db-shm']) await rm(path.join(local.dir, file), { force: true });
      server = await startServer(local);
      try {
        expect((await read(server, t)).body.error).toEqual({ code: 'RWS_AUTH_FAILED', message: 'this vault holds no record of the token; mint a new one with POST /api/v1/vault/tokens/generate' });
      } finally {
        await server.stop();
      }
    } finally {
      await local.cleanup();
    }
  });

  it('refuses every earlier token when the state is restored from an older copy, and says so', async () => {
    const local = await makeStore(SECRETS);
    const backup = await mkdtemp(path.join(tmpdir(), 'rws-backup-'));
    try {
      const { key } = await makeApiKey(local, ['production'], ['SERVICE_B_*']);
      let server = await startServer(local);
      const before = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      const spentLater = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1 });
      await server.stop();
      for (const file of ['state.db', 'state.db-wal']) await copyFile(path.join(local.dir, file), path.join(backup, file)).catch(() => undefined);
      server = await startServer(local);
      expect((await call(`${server.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: before })).status).toBe(204);
      expect((await read(server, spentLater)).status).toBe(200);
      const after = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      await server.stop();
      for (const file of ['state.db', 'state.db-wal', 'state.db-shm']) await rm(path.join(local.dir, file), { force: true });
      for (const file of ['state.db', 'state.db-wal']) await copyFile(path.join(backup, file), path.join(local.dir, file)).catch(() => undefined);
      server = await startServer(local);
      try {
        expect((await read(server, before)).body.error.code).toBe('RWS_TOKEN_REVOKED');
        expect((await read(server, spentLater)).body.error.code).toBe('RWS_TOKEN_REVOKED');
        expect((await read(server, after)).body.error.code).toBe('RWS_AUTH_FAILED');
        expect(server.stderr()).toContain('RWS_STATE_ROLLED_BACK');
        // New tokens work again.
        const fresh = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
        expect((await read(server, fresh)).status).toBe(200);
      } finally {
        await server.stop();
      }
    } finally {
      await rm(backup, { recursive: true, force: true });
      await local.cleanup();
    }
  });
});

describe('audit verify', () => {
  it('walks the chain, and names the first row that was edited, deleted or inserted', async () => {
    const local = await makeStore(SECRETS);
    try {
      const { key } = await makeApiKey(local, ['production'], ['SERVICE_B_*']);
      const server = await startServer(local);
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      for (let i = 0; i < 8; i++) await read(server, t);
      await server.stop();
      const good = await cli(['audit', 'verify', '--store', local.dir]);
      expect(good.exitCode).toBe(0);
      // The import of the secrets, the key, the mint and the 8 reads.
      expect(good.stdout).toMatch(/^audit chain verified: 11 rows, head [0-9a-f]{64}\n$/);
      const { default: Sqlite } = await import('better-sqlite3');
      const tampered = async (sql: string, expected: RegExp) => {
        const copy = await makeStore();
        try {
          for (const file of ['state.db', 'state.db-wal']) await copyFile(path.join(local.dir, file), path.join(copy.dir, file)).catch(() => undefined);
          const db = new Sqlite(path.join(copy.dir, 'state.db'));
          db.exec(sql);
          db.close();
          const result = await cli(['audit', 'verify', '--store', copy.dir]);
          expect(result.exitCode).toBe(1);
          expect(result.stdout).toMatch(expected);
        } finally {
          await copy.cleanup();
        }
      };
      await tampered("UPDATE audit SET subject = 'someone-else' WHERE seq = 5", /^audit chain broken at seq 5: row 5 does not match its hash/);
      await tampered('DELETE FROM audit WHERE seq = 6', /^audit chain broken at seq 6: row 6 is missing/);
      await tampered(
        "UPDATE audit SET seq = -seq WHERE seq >= 4; UPDATE audit SET seq = 1 - seq WHERE seq < 0; INSERT INTO audit SELECT 4, time, event, outcome, status, error_code, api_key_id, jti, 'intruder', environment, keys, client, count, hash FROM audit WHERE seq = 3",
        /^audit chain broken at seq 4: row 4 does not match its hash/,
      );
      await tampered('UPDATE audit SET hash = (SELECT hash FROM audit WHERE seq = 2) WHERE seq = 3', /^audit chain broken at seq 3/);
      // A row numbered outside the chain (0, negative) is listed by `audit`: verify must see it too.
      for (const seq of [0, -7]) {
        await tampered(
          `INSERT INTO audit SELECT ${seq}, time, event, outcome, status, error_code, api_key_id, jti, 'intruder', environment, keys, client, count, hash FROM audit WHERE seq = 3`,
          new RegExp(`^audit chain broken at seq ${seq}: row ${seq} is before the first`),
        );
      }
      // Whoever can write the database can also recompute every hash after an edit: the chain then
      // verifies by itself, and only the anchor this host recorded (state-seen.json) catches it.
      const copy = await makeStore();
      try {
        for (const file of ['state.db', 'state.db-wal', 'state-seen.json']) await copyFile(path.join(local.dir, file), path.join(copy.dir, file)).catch(() => undefined);
        const { chainHash } = await import('../../../src/server/audit/chain.js');
        const db = new Sqlite(path.join(copy.dir, 'state.db'));
        db.prepare("UPDATE audit SET subject = 'someone-else' WHERE seq = 5").run();
        const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as Array<Record<string, any>>;
        let previous = rows[3]?.hash as string;
        for (const r of rows.slice(4)) {
          previous = chainHash(previous, r.seq, { ...r, keys: r.keys === null ? null : JSON.parse(r.keys) } as never);
          db.prepare('UPDATE audit SET hash = ? WHERE seq = ?').run(previous, r.seq);
        }
        db.close();
        const result = await cli(['audit', 'verify', '--store', copy.dir]);
        expect(result.exitCode).toBe(1);
        expect(result.stdout).toMatch(/^audit chain broken at seq \d+: the row differs from what this host recorded/);
      } finally {
        await copy.cleanup();
      }
    } finally {
      await local.cleanup();
    }
  });
});

describe('a state database another process keeps locked', () => {
  it('answers each request 503 within the request timeout, not after every write queued before it, and serves again once released', async () => {
    const server = await startServer(store);
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await read(server, t)).status).toBe(200);
      // As an operator's `sqlite3 state.db` inside BEGIN IMMEDIATE, or a stopped admin command,
      // would: the server waits 10 s for the lock per transaction, then answers 503. Meanwhile its
      // rollback check wants to write every second; before, those writes queued up, and the
      // second request below waited for each of them in turn (about 100 s).
      const replies: Array<{ status: number; code: unknown; seconds: number }> = [];
      await whileStateLocked(storePaths(store.dir), async () => {
        for (const ask of [() => read(server, t), () => generate(server, apiKey, { subject: 'locked', environment: 'production', key_pattern: 'SERVICE_B_KEY' })]) {
          const started = Date.now();
          const reply = await ask();
          replies.push({ status: reply.status, code: reply.body?.error?.code, seconds: (Date.now() - started) / 1000 });
        }
      });
      for (const reply of replies) {
        expect(reply.status).toBe(503);
        expect(reply.code).toBe('RWS_STATE_UNAVAILABLE');
        // The default request timeout.
        expect(reply.seconds).toBeLessThan(30);
      }
      expect((await read(server, t)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 120_000);
});

describe('a full filesystem', () => {
  const canMount = process.getuid?.() === 0 && spawnSync('unshare', ['--mount', 'true']).status === 0;

  it('answers 503 and tears nothing; once space is freed it serves and restarts cleanly', async () => {
    if (!canMount) return void console.warn('skipped: mounting a small tmpfs is refused here');
    const mountPoint = await mkdtemp(path.join(tmpdir(), 'rws-full-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint]);
    try {
      const dir = path.join(mountPoint, 'store');
      await cliOk(['init', '--store', dir]);
      await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', dir], { input: JSON.stringify(SECRETS.production) });
      const tiny: TestStore = { root: mountPoint, dir, cleanup: async () => undefined };
      const { key } = await makeApiKey(tiny, ['production'], ['SERVICE_B_*']);
      let server = await startServer(tiny, ['--audit-log', path.join(mountPoint, 'audit.jsonl')]);
      const t = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1000 });
      expect((await read(server, t)).status).toBe(200);
      // Fill the disk to the last block.
      await run('sh', ['-c', `dd if=/dev/zero of=${path.join(mountPoint, 'filler')} bs=4k 2>/dev/null; true`]);
      const refused = [];
      for (let i = 0; i < 200; i++) {
        const reply = await read(server, t);
        if (reply.status === 503) refused.push(reply.body.error.code);
        expect([200, 503]).toContain(reply.status);
        expect(reply.text).not.toContain('b-key-value'.repeat(reply.status === 503 ? 1 : 0) || '\u0000');
      }
      expect(refused.length).toBeGreaterThan(0);
      await rm(path.join(mountPoint, 'filler'));
      expect((await read(server, t)).status).toBe(200);
      await server.stop();
      server = await startServer(tiny, ['--audit-log', path.join(mountPoint, 'audit.jsonl')]);
      try {
        expect((await read(server, t)).status).toBe(200);
      } finally {
        await server.stop();
      }
      expect((await cli(['audit', 'verify', '--store', dir])).exitCode).toBe(0);
      // The audit file sink holds only whole lines, each one a row of the database.
      const { readFile } = await import('node:fs/promises');
      const sink = await readFile(path.join(mountPoint, 'audit.jsonl'), 'utf8');
      expect(sink.endsWith('\n')).toBe(true);
      const successes = (await auditRows(dir)).filter((row) => row.event === 'secret.read' && row.outcome === 'success').length;
      const used = sink.trim().split('\n').map((line) => JSON.parse(line)).filter((row) => row.event === 'secret.read' && row.outcome === 'success').length;
      expect(used).toBe(successes);
    } finally {
      await run('umount', ['-l', mountPoint]).catch(() => undefined);
      await rm(mountPoint, { recursive: true, force: true });
    }
  });
});

