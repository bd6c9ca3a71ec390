// PostgreSQL for tests: databases on the run's one server, and servers a test may crash.
// The server is started by the first test that asks (test/helpers/postgres-server.ts); with
// RWS_TEST_DATABASE_URL set, that server is used instead and nothing is started.
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { type PostgresContext, readPassword, reservePort, serverUrl, sharedServerPort, startServer, stopServerImmediate } from './postgres-server.js';

function postgresContext(): PostgresContext {
  const provided = inject('rwsPostgres');
  if (!provided) throw new Error('test PostgreSQL: vitest.config.ts does not register test/helpers/postgres-global-setup.ts');
  return provided;
}

/** For messages: a URL as it may be printed. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

let adminUrl: Promise<string> | undefined;
function sharedAdminUrl(): Promise<string> {
  const context = postgresContext();
  if (context.kind === 'external') return Promise.resolve(context.url);
  adminUrl ??= sharedServerPort(context.runDir).then(
    (port) => serverUrl(port, readPassword(context.runDir)),
    (error: unknown) => {
      // A later test may try again (the failed start cleaned up after itself).
      adminUrl = undefined;
      throw error;
    },
  );
  return adminUrl;
}

async function asAdmin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  // Without a listener, a connection the server drops would crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
  } catch (error) {
    // pg's messages carry no password; say which server in the same spirit.
    throw new Error(`test PostgreSQL ${redactUrl(url)}: ${(error as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** A fresh, empty database of its own on the run's PostgreSQL server. */
export async function testDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = await sharedAdminUrl();
  // Lower-case hex: a valid identifier with no quoting.
  const name = `rws_test_${randomBytes(8).toString('hex')}`;
  // template0: an external server's template1 may hold objects of its own.
  await asAdmin(admin, `CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8'`);
  return {
    url: withDatabase(admin, name),
    // FORCE ends the sessions still on it (a server under test that was killed, a pool not
    // closed) instead of failing; IF EXISTS makes a second drop() harmless.
    drop: () => asAdmin(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

/**
 * A PostgreSQL server of the caller's own, to crash and restart: stopping the run's shared server
 * would break the tests other workers run at the same time. `url` is its admin URL (database
 * `postgres`, empty), fixed before the first start() so that a server under test can be started
 * against a database that is down. start() creates the server on its first call and starts it;
 * later calls start it again on the same port and data dir (no-op while it runs).
 * stopImmediate() is `pg_ctl stop -m immediate`: a crash, sessions cut without goodbye.
 * Undefined with RWS_TEST_DATABASE_URL: an external server is not ours to stop.
 */
export function postgresControl(): { stopImmediate(): Promise<void>; start(): Promise<void>; freeze(): Promise<void>; thaw(): Promise<void>; url: string } | undefined {
  const context = postgresContext();
  if (context.kind === 'external') return undefined;
  const { runDir } = context;
  const name = `control-${randomBytes(4).toString('hex')}`;
  const port = reservePort(runDir);
  let created = false;
  return {
    url: serverUrl(port, readPassword(runDir)),
    async start() {
      await startServer(runDir, name, port);
      created = true;
    },
    async stopImmediate() {
      if (!created) throw new Error('postgresControl(): start() the server before stopping it');
      await stopServerImmediate(runDir, name);
    },
    // A database that hangs rather than goes away: every process of the server SIGSTOPped, so
    // connections stay open and nothing answers (the kernel still accepts new connections).
    freeze: () => signalServer(runDir, name, 'SIGSTOP'),
    thaw: () => signalServer(runDir, name, 'SIGCONT'),
  };
}

/** Sends `signal` to a control server's postmaster and every process it started. */
async function signalServer(runDir: string, name: string, signal: NodeJS.Signals): Promise<void> {
  const pidFile = await readFile(join(runDir, name, 'data', 'postmaster.pid'), 'utf8');
  const postmaster = Number(pidFile.split('\n')[0]);
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => '');
    if (/^PPid:\s+(\d+)$/m.exec(status)?.[1] === String(postmaster)) children.push(Number(entry));
  }
  // The postmaster first on SIGSTOP (it starts no new backend meanwhile), last on SIGCONT.
  for (const pid of signal === 'SIGSTOP' ? [postmaster, ...children] : [...children, postmaster]) process.kill(pid, signal);
}
