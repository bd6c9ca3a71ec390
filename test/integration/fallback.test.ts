// --fallback and --offline against a real secrets-server that is SIGKILLed and started again on
// the same port and store, with real files under a private XDG_STATE_HOME. The seven cases of
// issue 13, numbered as there.
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { auditRowsSync, call, cliOk, makeApiKey, makeStore, startServer, token, until, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { baseEnv, BIN, fixture, makeRuntimeDir, makeSharedDir, removeDir, ROOT, runBin } from '../helpers/cli.js';
import { alive, CHILD_COMMAND, startWatch, ups, until as waitFor } from '../helpers/watch.js';

/** Passes one request on to `backend`, and its answer back (the proxies below that stand between a run and the vault). */
function forward(backend: URL, req: IncomingMessage, res: ServerResponse): void {
  const upstream = request({ host: backend.hostname, port: backend.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  req.pipe(upstream);
}

/** A proxy to the vault that lets `intercept` answer a request itself (true), else passes it on. */
async function interceptingProxy(backend: URL, intercept: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<{ url: string; close(): Promise<void> }> {
  const proxy: Server = createServer((req, res) => {
    if (!intercept(req, res)) forward(backend, req, res);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(proxy.address() as { port: number }).port}`,
    close: () => new Promise((resolve) => (proxy.closeAllConnections(), proxy.close(() => resolve()))),
  };
}

const VALUES = { JOB_DB_PASSWORD: 'fallback-db-secret-1', JOB_API_TOKEN: 'fallback-api-secret-2' };
let store: TestStore;
let server: RunningServer | undefined;
let url: string;
let port: string;
let runtimeDir: string;
let stateHome: string;
const printed: string[] = [];
const keys: string[] = [];

beforeAll(async () => {
  store = await makeStore({ prod: VALUES });
}, 60_000);

afterAll(async () => {
  // No output of any run, and no server log, ever held a key.
  const all = [...printed, server?.stderr() ?? ''].join('\n');
  for (const key of keys) expect(all).not.toContain(key);
  await server?.stop('SIGKILL');
  await store?.cleanup();
});

beforeEach(async () => {
  runtimeDir = makeRuntimeDir();
  stateHome = join(runtimeDir, 'state');
  server = await startServer(store);
  url = server.url;
  port = new URL(url).port;
});

afterEach(async () => {
  await server?.stop('SIGKILL');
  server = undefined;
  removeDir(runtimeDir);
});

async function newKey(extra: string[] = []): Promise<{ id: string; key: string }> {
  const made = await makeApiKey(store, ['prod'], ['JOB_*'], extra);
  keys.push(made.key);
  return made;
}

async function rws(args: string[], env: Record<string, string>) {
  const result = await runBin(args, { runtimeDir, env: { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, ...env } });
  printed.push(result.stdout, result.stderr);
  return result;
}

const run = (apiKey: string, flags: string[] = ['--fallback'], env: Record<string, string> = {}) => rws(['-e', 'prod', '-k', 'JOB_*', ...flags, '--', fixture('print-env.mjs')], { RWS_API_KEY: apiKey, ...env });
const cacheDir = () => join(stateHome, 'run-with-secrets', 'fallback');
const cacheFiles = () => (existsSync(cacheDir()) ? readdirSync(cacheDir()).filter((name) => name.endsWith('.bin')) : []);
/** One job of an API key: its own selection, so its own copy. */
const job = (apiKey: string, pattern: string, flags: string[] = ['--fallback']) => rws(['-e', 'prod', '-k', pattern, ...flags, '--', fixture('print-env.mjs')], { RWS_API_KEY: apiKey });
/** The same store on the same port: what the wrapper sees as "the vault came back". */
const restart = (args: string[] = []) => startServer(store, ['--port', port, ...args]);
const killServer = async () => {
  await server?.stop('SIGKILL');
  server = undefined;
};

/** The CLI as uid 65534 (nobody), whose files are under `shared`. */
async function asNobody(args: string[], env: Record<string, string>, shared: string) {
  const result = await execa(BIN, args, { uid: 65534, gid: 65534, reject: false, extendEnv: false, env: baseEnv(shared, { RWS_VAULT_URL: url, ...env }) });
  printed.push(result.stdout, result.stderr);
  return result;
}

/** A --fallback=PATH copy of `key` in runtimeDir/jobs (0755, the user's), with one offline use queued. */
async function copyAtPathWithUse(key: string): Promise<{ jobs: string; path: string; queue: string }> {
  const jobs = join(runtimeDir, 'jobs');
  const path = join(jobs, 'nightly.bin');
  mkdirSync(jobs, { mode: 0o755 });
  expect((await run(key, [`--fallback=${path}`])).exitCode).toBe(0);
  expect((await run(key, ['--offline', `--fallback=${path}`])).exitCode).toBe(0);
  return { jobs, path, queue: join(jobs, readdirSync(jobs).find((name) => name.endsWith('.uses'))!) };
}

/** Runs `test` with a new key and a shared directory holding `name`, root's and 0700 (a HOME sudo -u keeps); removed after. */
async function withClosedHome(name: string, test: (context: { key: string; shared: string; closed: string }) => Promise<void>): Promise<void> {
  const { key } = await newKey();
  const shared = makeSharedDir();
  try {
    const closed = join(shared, name);
    mkdirSync(closed, { mode: 0o700 });
    await test({ key, shared, closed });
  } finally {
    removeDir(shared);
  }
}

/** A HOME of nobody's with one copy and one offline use of `key` in the default place. */
async function nobodysCopy(shared: string, key: string): Promise<{ home: string; dir: string; queue: string }> {
  const home = join(shared, 'home');
  mkdirSync(home, { mode: 0o700 });
  chownSync(home, 65534, 65534);
  const job = ['-e', 'prod', '-k', 'JOB_*', '--', 'true'];
  expect((await asNobody(['--fallback', ...job], { HOME: home, RWS_API_KEY: key }, shared)).exitCode).toBe(0);
  expect((await asNobody(['--offline', ...job], { HOME: home, RWS_API_KEY: key }, shared)).exitCode).toBe(0);
  const dir = join(home, '.local', 'state', 'run-with-secrets', 'fallback');
  return { home, dir, queue: join(dir, readdirSync(dir).find((name) => name.endsWith('.uses'))!) };
}

/** Two jobs of one API key and one of another, each with its copy; then the first key is revoked. */
async function copiesOfARevokedKey(): Promise<{ key: string; other: string }> {
  const { id, key } = await newKey();
  const other = await newKey();
  expect((await job(key, 'JOB_DB_*')).exitCode).toBe(0);
  expect((await job(key, 'JOB_API_*')).exitCode).toBe(0);
  expect((await job(other.key, 'JOB_API_*')).exitCode).toBe(0);
  expect(cacheFiles()).toHaveLength(3);
  await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
  return { key, other: other.key };
}

/** In the next outage no job of the revoked key runs from a copy; the other key's job still does. */
async function expectOnlyTheOtherKeyOffline(key: string, other: string): Promise<void> {
  await killServer();
  const outage = await job(key, 'JOB_API_*');
  expect(outage.exitCode).toBe(125);
  expect(outage.stdout).toBe('');
  expect(outage.stderr).not.toContain('RWS_FALLBACK_USED');
  const unrelated = await job(other, 'JOB_API_*');
  expect(unrelated.exitCode, unrelated.stderr).toBe(0);
  expect(unrelated.stderr).toContain('warning RWS_FALLBACK_USED');
}

describe('the offline fallback', () => {
  it('1: writes an encrypted 0600 copy; with the server SIGKILLed the next run uses it, warns with age and time left, and exits as the child does', async () => {
    const { key } = await newKey();
    const online = await run(key);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout)).toMatchObject(VALUES);
    const [file] = cacheFiles();
    expect(file).toMatch(/^[0-9a-f]{32}\.bin$/);
    expect(lstatSync(cacheDir()).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(cacheDir(), file!)).mode & 0o777).toBe(0o600);
    const bytes = readFileSync(join(cacheDir(), file!));
    for (const value of Object.values(VALUES)) expect(bytes.includes(Buffer.from(value))).toBe(false);
    expect(bytes.includes(Buffer.from(key))).toBe(false);

    await killServer();
    const offline = await run(key);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(JSON.parse(offline.stdout)).toMatchObject(VALUES);
    expect(offline.stderr).toMatch(/warning RWS_FALLBACK_USED: the vault is unavailable \(RWS_VAULT_UNREACHABLE\): using the fallback cache fetched \d+s ago, usable for 23h 59m more \(until \d{4}-/);

    const status = await rws(['-e', 'prod', '-k', 'JOB_*', '--fallback', '--', fixture('exit-with.mjs'), '7'], { RWS_API_KEY: key });
    expect(status.exitCode).toBe(7);
  }, 60_000);

  it('2: a clock past not_after is refused with RWS_FALLBACK_EXPIRED and the copy removed; past --fallback-max-age with RWS_FALLBACK_TOO_OLD; the hook cannot turn time back', async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    await killServer();
    const tooOld = await run(key, ['--fallback', '--fallback-max-age', '1h'], { RWS_TEST_CLOCK_AHEAD_SECONDS: '7200' });
    expect(tooOld.exitCode).toBe(125);
    expect(tooOld.stderr).toMatch(/error RWS_FALLBACK_TOO_OLD: the vault is unavailable \(RWS_VAULT_UNREACHABLE\), and the fallback cache \S+ was fetched 2h ago, more than --fallback-max-age 1h/);
    expect(tooOld.stdout).toBe('');
    // A longer client limit cannot pass the vault's: 24 h by default, and the file goes.
    const expired = await run(key, ['--fallback', '--fallback-max-age', '30d'], { RWS_TEST_CLOCK_AHEAD_SECONDS: String(24 * 3600 + 60) });
    expect(expired.exitCode).toBe(125);
    expect(expired.stderr).toMatch(/error RWS_FALLBACK_EXPIRED: the vault is unavailable \(RWS_VAULT_UNREACHABLE\), and the fallback cache \S+ expired at \d{4}-\d\d-\d\dT/);
    expect(cacheFiles()).toEqual([]);
    for (const value of ['-60', '1.5', 'soon']) {
      const refused = await run(key, ['--offline'], { RWS_TEST_CLOCK_AHEAD_SECONDS: value });
      expect(refused.exitCode).toBe(125);
      expect(refused.stderr).toContain('error RWS_USAGE: RWS_TEST_CLOCK_AHEAD_SECONDS must be a whole number of seconds');
    }
  }, 60_000);

  it('2b: the server\'s --fallback-max-age caps not_after; a client cannot lengthen it', async () => {
    await killServer();
    server = await restart(['--fallback-max-age', '1h']);
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const expired = await run(key, ['--offline', '--fallback-max-age', '7d'], { RWS_TEST_CLOCK_AHEAD_SECONDS: '3660' });
    expect(expired.exitCode).toBe(125);
    expect(expired.stderr).toContain('error RWS_FALLBACK_EXPIRED');
  }, 60_000);

  it('3: a key revoked while the server is up: 401, the copy is gone, the run fails', async () => {
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect(cacheFiles()).toHaveLength(1);
    await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
    const refused = await run(key);
    expect(refused.exitCode).toBe(125);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('warning RWS_FALLBACK_REMOVED: the vault refused (RWS_VAULT_AUTH): removed the fallback cache');
    expect(refused.stderr).toContain('error RWS_VAULT_AUTH');
    expect(cacheFiles()).toEqual([]);
  }, 60_000);

  it('3e: a run that fetched just before the revocation and writes its copy after another run\'s 401 removed them: the copy does not stay', async (context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect(cacheFiles()).toHaveLength(1);
    // The writing run has its answer; strace holds its rename of the new copy into place for 4 s.
    const straceLog = join(runtimeDir, 'writer.strace');
    const writer = execa('strace', ['-f', '-qq', '-o', straceLog, '-e', 'trace=rename', '-e', 'inject=rename:delay_enter=4000000', BIN, '-e', 'prod', '-k', 'JOB_*', '--fallback', '--', fixture('print-env.mjs')], {
      extendEnv: false,
      env: baseEnv(runtimeDir, { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key }),
      reject: false,
    });
    const renaming = () => (existsSync(straceLog) ? readFileSync(straceLog, 'utf8') : '');
    await until(async () => renaming().includes('.bin"'), 20_000);
    // Meanwhile the key is revoked and another run hears the 401: it removes the copies it finds.
    await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
    const refused = await job(key, 'JOB_*', []);
    expect(refused.exitCode).toBe(125);
    const staged = !renaming().includes('DELAYED');
    const written = await writer;
    printed.push(written.stdout, written.stderr);
    if (!staged) return context.skip();
    expect(written.exitCode, written.stderr).toBe(0);
    expect(written.stderr).toContain(`warning RWS_FALLBACK_NOT_WRITTEN: the vault has refused this API key in another run on this host since this one fetched; no fallback cache is kept at ${cacheDir()}/`);
    expect(cacheFiles()).toEqual([]);
    // No secret in the mark the 401 left: an empty file named by a digest.
    const marks = readdirSync(cacheDir()).filter((name) => name.endsWith('.refused'));
    expect(marks).toHaveLength(1);
    expect(marks[0]).toMatch(/^[0-9a-f]{32}\.refused$/);
    expect(readFileSync(join(cacheDir(), marks[0]!), 'utf8')).toBe('');
    expect(lstatSync(join(cacheDir(), marks[0]!)).mode & 0o777).toBe(0o600);
  }, 60_000);

  it('3b: a 401 seen by one job removes every copy of that API key, so another job of the key cannot run from its copy in the next outage', async () => {
    const { key, other } = await copiesOfARevokedKey();
    const refused = await job(key, 'JOB_DB_*');
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toMatch(/warning RWS_FALLBACK_REMOVED: the vault refused \(RWS_VAULT_AUTH\): removed the fallback cache \S+\n/);
    expect(refused.stderr).toContain(`warning RWS_FALLBACK_REMOVED: the vault refused the API key (RWS_VAULT_AUTH): removed 1 fallback copy made with it from ${cacheDir()}`);
    // The other key's copy stays.
    expect(cacheFiles()).toHaveLength(1);
    await expectOnlyTheOtherKeyOffline(key, other);
  }, 60_000);

  it('3c: a 401 in a run without --fallback removes the copies of that API key too (and so does a --dry-run, or --watch as it starts); the run fails as it did', async () => {
    const { key, other } = await copiesOfARevokedKey();
    const plain = await job(key, 'JOB_*', []);
    expect(plain.exitCode).toBe(125);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toContain(`warning RWS_FALLBACK_REMOVED: the vault refused the API key (RWS_VAULT_AUTH): removed 2 fallback copies made with it from ${cacheDir()}`);
    expect(cacheFiles()).toHaveLength(1);
    // With nothing left to remove, the same run fails the same way, and says nothing more.
    const again = await job(key, 'JOB_*', []);
    const errorLines = (text: string) => text.split('\n').filter((line) => !line.includes('warning RWS_FALLBACK_REMOVED'));
    expect(again.exitCode).toBe(125);
    expect(again.stderr).not.toContain('RWS_FALLBACK');
    expect(errorLines(plain.stderr)).toEqual(errorLines(again.stderr));

    for (const flags of [['--dry-run'], ['--watch']]) {
      const next = await newKey();
      expect((await job(next.key, 'JOB_*')).exitCode).toBe(0);
      expect(cacheFiles()).toHaveLength(2);
      await cliOk(['apikey', 'revoke', next.id, '--store', store.dir]);
      const refused = await job(next.key, 'JOB_*', flags);
      expect(refused.exitCode, flags[0]).toBe(125);
      expect(refused.stderr).toContain('error RWS_VAULT_AUTH');
      expect(refused.stderr).toContain('warning RWS_FALLBACK_REMOVED: the vault refused the API key (RWS_VAULT_AUTH): removed 1 fallback copy made with it');
      expect(cacheFiles()).toHaveLength(1);
    }
    await expectOnlyTheOtherKeyOffline(key, other);
  }, 60_000);

  it('3d: --watch, the key revoked while the child runs: the refused refresh removes the copies of that API key, and the wrapper exits 77', async () => {
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect(cacheFiles()).toHaveLength(1);
    const record = join(runtimeDir, 'record.jsonl');
    const env = { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key, WATCH_RECORD: record, WATCH_NAMES: 'JOB_DB_PASSWORD' };
    const wrapper = startWatch(['-e', 'prod', '-k', 'JOB_*', '--watch', '--watch-interval', '30s', '--keep-env', 'WATCH_*', '--', ...CHILD_COMMAND], runtimeDir, env);
    await waitFor('the first child', () => ups(record)[0]);
    expect(cacheFiles()).toHaveLength(1);
    await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
    const result = await wrapper;
    printed.push(result.stdout, result.stderr);
    expect(result.exitCode, result.stderr).toBe(77);
    expect(result.stderr).toContain(`warning RWS_FALLBACK_REMOVED: the vault refused the API key (RWS_VAULT_AUTH): removed 1 fallback copy made with it from ${cacheDir()}`);
    expect(result.stderr).toContain('error RWS_WATCH_REVOKED');
    expect(cacheFiles()).toEqual([]);
  }, 60_000);

  it('3f: --watch, an admin revokes the one-use token a refresh minted (not the key): asked again with a new token, the child runs on, the key\'s copies stay, and --fallback keeps writing its copy', async () => {
    const { id, key } = await newKey();
    const admin = await makeApiKey(store, [], [], ['--admin']);
    keys.push(admin.key);
    expect((await run(key)).exitCode).toBe(0);
    const record = join(runtimeDir, 'record.jsonl');
    const env = { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key, WATCH_RECORD: record, WATCH_NAMES: 'JOB_DB_PASSWORD' };
    const wrapper = startWatch(['-e', 'prod', '-k', 'JOB_*', '--watch', '--watch-interval', '30s', '--debounce', '0', '-v', '--keep-env', 'WATCH_*', '--', ...CHILD_COMMAND], runtimeDir, env);
    const first = await waitFor('the first child', () => ups(record)[0]);
    // The held refresh's token, as an admin sees it in the list of live tokens.
    let jti: string | undefined;
    await until(async () => {
      const live = await call(`${url}/api/v1/vault/tokens?api_key_id=${id}&active=true`, { auth: admin.key });
      jti = (live.body as { tokens: Array<{ jti: string }> }).tokens[0]?.jti;
      return jti !== undefined;
    }, 10_000);
    expect((await call(`${url}/api/v1/vault/tokens/${jti}`, { method: 'DELETE', auth: admin.key })).status).toBe(204);
    await waitFor('the refused refresh asked again', () => wrapper.stderrText().includes("the vault refused this refresh's own token (RWS_TOKEN_REVOKED); asking again with a new one"), 10_000);
    // Refreshing goes on with a new token: a change still reaches the child.
    await cliOk(['secret', 'set', 'prod', 'JOB_DB_PASSWORD', '--store', store.dir], { input: 'fallback-db-secret-3' });
    let second;
    try {
      second = await waitFor('the restarted child', () => ups(record)[1], 20_000);
    } finally {
      await cliOk(['secret', 'set', 'prod', 'JOB_DB_PASSWORD', '--store', store.dir], { input: VALUES.JOB_DB_PASSWORD });
    }
    expect(second.seen).toEqual({ JOB_DB_PASSWORD: 'fallback-db-secret-3' });
    expect(alive(first.pid)).toBe(false);
    process.kill(wrapper.pid!, 'SIGTERM');
    const result = await wrapper;
    printed.push(result.stdout, result.stderr);
    expect(result.exitCode, result.stderr).not.toBe(77);
    expect(result.stderr).not.toContain('RWS_WATCH_REVOKED');
    expect(result.stderr).not.toContain('RWS_FALLBACK_REMOVED');
    // Asked again at once, and the new token was taken: no failure to report.
    expect(result.stderr).not.toContain('warning RWS_VAULT_AUTH');
    // The key was never refused: its copy stays, and the next --fallback run keeps its own.
    expect(cacheFiles()).toHaveLength(1);
    const later = await run(key);
    expect(later.exitCode, later.stderr).toBe(0);
    expect(later.stderr).not.toContain('RWS_FALLBACK_NOT_WRITTEN');
  }, 90_000);

  it('3g: a run whose own minted token is revoked before its batch fails with that 401, and leaves the key\'s other copies and later copies alone', async () => {
    const { key } = await newKey();
    const admin = await makeApiKey(store, [], [], ['--admin']);
    keys.push(admin.key);
    let revokeNext = false;
    // Between the run and the vault: revokes the token a batch carries (as an admin may, from the
    // list of live tokens) just before passing the batch on.
    const proxy = await interceptingProxy(new URL(url), (req, res) => {
      if (!(revokeNext && req.url === '/api/v1/vault/secrets/batch')) return false;
      revokeNext = false;
      const jwt = (req.headers.authorization ?? '').replace(/^Bearer +/, '');
      const { jti } = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { jti: string };
      void call(`${url}/api/v1/vault/tokens/${jti}`, { method: 'DELETE', auth: admin.key }).then(() => forward(new URL(url), req, res));
      return true;
    });
    const viaProxy = (pattern: string) => rws(['-e', 'prod', '-k', pattern, '--fallback', '--', fixture('print-env.mjs')], { RWS_API_KEY: key, RWS_VAULT_URL: proxy.url });
    try {
      expect((await viaProxy('JOB_DB_*')).exitCode).toBe(0);
      expect((await viaProxy('JOB_API_*')).exitCode).toBe(0);
      expect(cacheFiles()).toHaveLength(2);
      revokeNext = true;
      const refused = await viaProxy('JOB_API_*');
      expect(refused.exitCode).toBe(125);
      expect(refused.stderr).toMatch(/error RWS_VAULT_AUTH: .*refused the token while fetching secrets: .*\(RWS_TOKEN_REVOKED\)/);
      expect(refused.stderr).not.toContain('removed 1 fallback copy made with it');
      // The other job's copy stays, and the key is not taken for refused on this host.
      expect(cacheFiles()).toHaveLength(1);
      const later = await viaProxy('JOB_API_*');
      expect(later.exitCode, later.stderr).toBe(0);
      expect(later.stderr).not.toContain('RWS_FALLBACK_NOT_WRITTEN');
      expect(cacheFiles()).toHaveLength(2);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('3h: a 401 the vault later takes back (the key accepted again): the next --fallback run keeps its copy, where the old mark kept none for ever', async () => {
    const { key } = await newKey();
    let refuseMint = false;
    // Between the run and the vault: a 401 to the API key once, as a vault answers for a key row
    // it cannot verify until its admin repairs it.
    const proxy = await interceptingProxy(new URL(url), (req, res) => {
      if (!(refuseMint && req.url === '/api/v1/vault/tokens/generate')) return false;
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end(JSON.stringify({ error: { code: 'RWS_AUTH_FAILED', message: 'unknown, revoked or expired API key' } }));
      return true;
    });
    const viaProxy = () => rws(['-e', 'prod', '-k', 'JOB_*', '--fallback', '--', fixture('print-env.mjs')], { RWS_API_KEY: key, RWS_VAULT_URL: proxy.url });
    try {
      expect((await viaProxy()).exitCode).toBe(0);
      refuseMint = true;
      const refused = await viaProxy();
      expect(refused.exitCode).toBe(125);
      expect(refused.stderr).toContain('error RWS_VAULT_AUTH');
      expect(cacheFiles()).toEqual([]);
      refuseMint = false;
      // The mark is dated a second ahead of its 401 (file systems that keep whole seconds): a run
      // that begins after that date is one the vault accepted since.
      const mark = join(cacheDir(), readdirSync(cacheDir()).find((name) => name.endsWith('.refused'))!);
      await waitFor('the mark in the past', () => lstatSync(mark).mtimeMs < Date.now(), 5_000);
      const accepted = await viaProxy();
      expect(accepted.exitCode, accepted.stderr).toBe(0);
      expect(accepted.stderr).not.toContain('RWS_FALLBACK_NOT_WRITTEN');
      expect(cacheFiles()).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('3i: a damaged file by a copy\'s name in the default place (another version\'s, truncated) is no copy of the key: a 401 removes the key\'s copies and says so, not that some could not be removed', async () => {
    const { key, other } = await copiesOfARevokedKey();
    const damaged = join(cacheDir(), `${'0'.repeat(32)}.bin`);
    writeFileSync(damaged, 'not a fallback copy', { mode: 0o600 });
    const refused = await job(key, 'JOB_DB_*', []);
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain(`warning RWS_FALLBACK_REMOVED: the vault refused the API key (RWS_VAULT_AUTH): removed 2 fallback copies made with it from ${cacheDir()}`);
    expect(refused.stderr).not.toContain('RWS_FALLBACK_NOT_REMOVED');
    // Not ours to judge: a read refuses it, and it stays.
    expect(existsSync(damaged)).toBe(true);
    await expectOnlyTheOtherKeyOffline(key, other);
  }, 60_000);

  it('4: a flipped byte or an edited not_after is refused with RWS_FALLBACK_INVALID, and nothing else is tried', async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const path = join(cacheDir(), cacheFiles()[0]!);
    const good = readFileSync(path);
    await killServer();
    const flipped = Buffer.from(good);
    flipped[flipped.length - 20]! ^= 0x01;
    writeFileSync(path, flipped);
    const one = await run(key);
    expect(one.exitCode).toBe(125);
    expect(one.stdout).toBe('');
    expect(one.stderr).toMatch(/error RWS_FALLBACK_INVALID: the vault is unavailable \(RWS_VAULT_UNREACHABLE\), and the fallback cache \S+ is refused: its authentication tag does not match/);

    // A later date of the same length, so that only the authenticated data differs.
    const text = good.toString('latin1');
    const notAfter = /"not_after":"(\d{4})/.exec(text)!;
    writeFileSync(path, Buffer.from(text.replace(notAfter[0], `"not_after":"${Number(notAfter[1]) + 1}`), 'latin1'));
    const two = await run(key);
    expect(two.exitCode).toBe(125);
    expect(two.stdout).toBe('');
    expect(two.stderr).toContain('error RWS_FALLBACK_INVALID');
    expect(two.stderr).not.toContain('RWS_FALLBACK_USED');
  }, 60_000);

  it('5: a usage-limited token writes no file, nor does a --no-fallback key, and the server says why', async () => {
    const { key } = await newKey();
    const limited = await token({ url }, key, { subject: 't', environment: 'prod', key_pattern: 'JOB_*', usage_limit: 5 });
    const withToken = await rws(['-e', 'prod', '-k', 'JOB_*', '--fallback', '--', fixture('print-env.mjs')], { RWS_TOKEN: limited });
    expect(withToken.exitCode).toBe(125);
    expect(withToken.stderr).toContain('error RWS_USAGE: --fallback and --offline need an API key; the credential in use is a token (from RWS_TOKEN)');
    expect(cacheFiles()).toEqual([]);

    const noFallback = await newKey(['--no-fallback']);
    const refused = await run(noFallback.key);
    expect(refused.exitCode, refused.stderr).toBe(0);
    expect(JSON.parse(refused.stdout)).toMatchObject(VALUES);
    expect(refused.stderr).toContain('warning RWS_FALLBACK_NOT_ALLOWED: the vault does not let these secrets be cached');
    expect(cacheFiles()).toEqual([]);
  }, 60_000);

  it('6: twenty concurrent runs leave one file, no temp file, and it decrypts', async () => {
    const { key } = await newKey();
    const results = await Promise.all(Array.from({ length: 20 }, () => run(key)));
    for (const result of results) expect(result.exitCode, result.stderr).toBe(0);
    expect(readdirSync(cacheDir())).toEqual(cacheFiles());
    expect(cacheFiles()).toHaveLength(1);
    await killServer();
    const offline = await run(key, ['--offline']);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(JSON.parse(offline.stdout)).toMatchObject(VALUES);
    expect(offline.stderr).toContain('warning RWS_FALLBACK_USED: --offline: using the fallback cache');
  }, 120_000);

  it('7a: the copy and a queued use outlive a power loss: each is fsynced, renamed into place, and then its directory is fsynced', async (context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const { key } = await newKey();
    // -y names each descriptor's file, so an fsync says what it made durable.
    const traced = async (flags: string[], name: string) => {
      const log = join(runtimeDir, `${name}.strace`);
      const result = await execa('strace', ['-f', '-qq', '-y', '-o', log, '-e', 'trace=fsync,rename', BIN, '-e', 'prod', '-k', 'JOB_*', ...flags, '--', fixture('print-env.mjs')], {
        extendEnv: false,
        env: baseEnv(runtimeDir, { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key }),
        reject: false,
      });
      printed.push(result.stdout, result.stderr);
      expect(result.exitCode, result.stderr).toBe(0);
      return readFileSync(log, 'utf8').split('\n');
    };
    /** The renames into `where` (a path test), each with whether its directory was fsynced after it. */
    const renamesInto = (lines: string[], where: (target: string) => boolean) =>
      lines.flatMap((line, index) => {
        const target = /rename\("[^"]*", "([^"]+)"\) = 0/.exec(line)?.[1];
        if (target === undefined || !where(target)) return [];
        const dir = target.slice(0, target.lastIndexOf('/'));
        return [{ target, dirSynced: lines.slice(index + 1).some((later) => later.includes(`fsync(`) && later.includes(`<${dir}>)`)) }];
      });
    const online = renamesInto(await traced(['--fallback'], 'online'), (target) => target.endsWith('.bin'));
    expect(online).toHaveLength(1);
    expect(online[0]?.dirSynced).toBe(true);
    await killServer();
    const offline = renamesInto(await traced(['--offline'], 'offline'), (target) => target.includes('.uses/'));
    expect(offline).toHaveLength(1);
    expect(offline[0]?.dirSynced).toBe(true);
  }, 60_000);

  it('7: offline uses, concurrent ones too, reach the audit log as secret.offline_use once the server returns', async () => {
    const { id, key } = await newKey();
    expect((await run(key, ['--fallback', '--subject', 'nightly'])).exitCode).toBe(0);
    await killServer();
    const offline = await Promise.all([...Array.from({ length: 5 }, () => run(key, ['--fallback', '--subject', 'nightly'])), run(key, ['--offline', '--subject', 'nightly'])]);
    for (const result of offline) expect(result.exitCode, result.stderr).toBe(0);
    const queue = `${join(cacheDir(), cacheFiles()[0]!)}.uses`;
    expect(readdirSync(queue)).toHaveLength(6);
    expect(lstatSync(queue).mode & 0o777).toBe(0o700);
    for (const entry of readdirSync(queue)) expect(lstatSync(join(queue, entry)).mode & 0o777).toBe(0o600);

    server = await restart();
    const back = await run(key, ['--fallback', '--subject', 'nightly']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(readdirSync(queue)).toEqual([]);
    const rows = auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use');
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row).toMatchObject({ outcome: 'success', status: 204, api_key_id: id, environment: 'prod', keys: ['JOB_API_TOKEN', 'JOB_DB_PASSWORD'] });
      expect(row.subject).toMatch(/^nightly \(offline at \d{4}-\d\d-\d\dT[\d:.]+Z\)$/);
    }
  }, 120_000);

  it('7b: a long subject is cut to fit the time of the run by characters, never between the halves of an emoji', async () => {
    const { id, key } = await newKey();
    // The time added, " (offline at …Z)", is 38 characters: the cut comes after 218, and the
    // emoji (one character, two UTF-16 units) begins at the 218th.
    const subject = `${'s'.repeat(217)}\u{1F600}${'t'.repeat(20)}`;
    expect((await run(key, ['--fallback', '--subject', subject])).exitCode).toBe(0);
    await killServer();
    const offline = await run(key, ['--fallback', '--subject', subject]);
    expect(offline.exitCode, offline.stderr).toBe(0);
    server = await restart();
    const back = await run(key, ['--fallback', '--subject', 'back']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stderr).not.toContain('RWS_FALLBACK_NOT_REPORTED');
    const rows = auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use' && row.api_key_id === id);
    expect(rows).toHaveLength(1);
    // A lone surrogate would have been stored as U+FFFD, the emoji lost.
    expect(rows[0]!.subject).toMatch(new RegExp(`^${'s'.repeat(217)}\u{1F600} \\(offline at \\d{4}-[\\d:.T-]+Z\\)$`, 'u'));
  }, 60_000);

  it('7c: a subject of 200 emoji, which the vault takes (256 characters at most), is reported, not dropped by the queue for its 400 UTF-16 units', async () => {
    const { id, key } = await newKey();
    const subject = '\u{1F600}'.repeat(200);
    expect((await run(key, ['--fallback', '--subject', subject])).exitCode).toBe(0);
    await killServer();
    expect((await run(key, ['--fallback', '--subject', subject])).exitCode).toBe(0);
    server = await restart();
    const back = await run(key, ['--fallback', '--subject', 'back']);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(back.stderr).not.toContain('RWS_FALLBACK_QUEUE_INVALID');
    const rows = auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use' && row.api_key_id === id);
    expect(rows.map((row) => String(row.subject).replace(/ \(offline at [^)]+\)$/, ''))).toEqual([subject]);
  }, 60_000);
});

describe('a copy in a directory others may reach', () => {
  const refusedLine = (stderr: string) => stderr.split('\n').filter((line) => line.includes('error RWS_FALLBACK_UNSAFE'));
  const uses = (copy: string) => (existsSync(`${copy}.uses`) ? readdirSync(`${copy}.uses`) : []);

  it('the default place open to group or others: --offline, an outage and --dry-run --offline refuse the copy unread and queue nothing; a run that reaches the vault narrows it back to 0700', async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const copy = join(cacheDir(), cacheFiles()[0]!);
    expect((await run(key, ['--offline'])).exitCode).toBe(0);
    const queued = uses(copy);
    expect(queued).toHaveLength(1);
    const bytes = readFileSync(copy);
    for (const mode of [0o750, 0o701, 0o755]) {
      chmodSync(cacheDir(), mode);
      const offline = await run(key, ['--offline']);
      expect(offline.exitCode).toBe(125);
      expect(offline.stdout).toBe('');
      expect(refusedLine(offline.stderr)).toEqual([
        `run-with-secrets: error RWS_FALLBACK_UNSAFE: the fallback cache ${copy} is refused: its directory ${cacheDir()} is open to group or others (mode ${mode.toString(8)}) (hint: chmod 700 ${cacheDir()}: copies are kept 0600 in a 0700 directory (a --fallback run that reaches the vault narrows it too))`,
      ]);
    }
    const names = await rws(['-e', 'prod', '-k', 'JOB_*', '--offline', '--dry-run', '--', 'true'], { RWS_API_KEY: key });
    expect(names.exitCode).toBe(125);
    expect(names.stderr).toContain('error RWS_FALLBACK_UNSAFE');
    await killServer();
    const outage = await run(key, ['--fallback', '--retries', '0']);
    expect(outage.exitCode).toBe(125);
    expect(outage.stdout).toBe('');
    expect(outage.stderr).not.toContain('RWS_FALLBACK_USED');
    expect(refusedLine(outage.stderr)[0]).toContain(`error RWS_FALLBACK_UNSAFE: the vault is unavailable (RWS_VAULT_UNREACHABLE), and the fallback cache ${copy} is refused: its directory ${cacheDir()} is open to group or others (mode 755)`);
    // Nothing was read, removed or queued: the copy and the one use before are as they were.
    expect(readFileSync(copy).equals(bytes)).toBe(true);
    expect(uses(copy)).toEqual(queued);
    expect(lstatSync(cacheDir()).mode & 0o777).toBe(0o755);

    server = await restart();
    const back = await run(key);
    expect(back.exitCode, back.stderr).toBe(0);
    expect(lstatSync(cacheDir()).mode & 0o777).toBe(0o700);
    expect(uses(copy)).toEqual([]);
    expect((await run(key, ['--offline'])).exitCode).toBe(0);
  }, 90_000);

  it('a copy open to group or others is refused with the chmod that closes it', async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const copy = join(cacheDir(), cacheFiles()[0]!);
    chmodSync(copy, 0o644);
    const offline = await run(key, ['--offline']);
    expect(offline.exitCode).toBe(125);
    expect(refusedLine(offline.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNSAFE: the fallback cache ${copy} is refused: group or others may access it (mode 644) (hint: chmod 600 ${copy}: a copy is kept 0600 (it is sealed with the API key, useless without it))`,
    ]);
    expect(uses(copy)).toEqual([]);
    chmodSync(copy, 0o600);
    expect((await run(key, ['--offline'])).exitCode).toBe(0);
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)("the default place owned by another user: refused, neither read nor written nor narrowed; theirs, so no chown is offered", async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const copy = join(cacheDir(), cacheFiles()[0]!);
    chmodSync(cacheDir(), 0o755);
    chownSync(cacheDir(), 65534, 65534);
    const offline = await run(key, ['--offline']);
    expect(offline.exitCode).toBe(125);
    expect(refusedLine(offline.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNSAFE: the fallback cache ${copy} is refused: its directory ${cacheDir()} is owned by uid 65534, not by you (uid 0) (hint: it is uid 65534's: run as that user, or point HOME (sudo -H) or XDG_STATE_HOME at your own; do not remove it)`,
    ]);
    const online = await run(key);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(online.stderr).toContain(
      `warning RWS_FALLBACK_NOT_WRITTEN: the fallback cache ${copy} is refused: its directory ${cacheDir()} is owned by uid 65534, not by you (uid 0); no new copy written, the previous one, if any, stays (it is uid 65534's: run as that user, or point HOME (sudo -H) or XDG_STATE_HOME at your own; do not remove it)`,
    );
    expect(lstatSync(cacheDir())).toMatchObject({ uid: 65534, mode: expect.any(Number) });
    expect(lstatSync(cacheDir()).mode & 0o777).toBe(0o755);
  }, 60_000);

  it('--fallback=PATH in a directory others may write: refused on a read as on a write; one only others may read is the user\'s to keep', async () => {
    const { key } = await newKey();
    const jobs = join(runtimeDir, 'jobs');
    const path = join(jobs, 'nightly.bin');
    mkdirSync(jobs, { mode: 0o755 });
    expect((await run(key, [`--fallback=${path}`])).exitCode).toBe(0);
    for (const mode of [0o775, 0o757]) {
      chmodSync(jobs, mode);
      const offline = await run(key, [`--offline`, `--fallback=${path}`]);
      expect(offline.exitCode).toBe(125);
      expect(refusedLine(offline.stderr)).toEqual([
        `run-with-secrets: error RWS_FALLBACK_UNSAFE: the fallback cache ${path} is refused: its directory ${jobs} may be written by group or others (mode ${mode.toString(8)}) (hint: chmod go-w ${jobs}, or give --fallback=PATH in a directory of yours that only you can write)`,
      ]);
    }
    const online = await run(key, [`--fallback=${path}`]);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(online.stderr).toContain(
      `warning RWS_FALLBACK_NOT_WRITTEN: the fallback cache ${path} is refused: its directory ${jobs} may be written by group or others (mode 757); no new copy written, the previous one, if any, stays (chmod go-w ${jobs}, or give --fallback=PATH in a directory of yours that only you can write)`,
    );
    expect(lstatSync(jobs).mode & 0o777).toBe(0o757);
    chmodSync(jobs, 0o755);
    const offline = await run(key, ['--offline', `--fallback=${path}`]);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(lstatSync(jobs).mode & 0o777).toBe(0o755);
  }, 60_000);
});

describe('a copy whose path cannot be followed', () => {
  const errorLines = (stderr: string) => stderr.split('\n').filter((line) => line.includes(' error '));

  it('a file where a directory is needed: --offline and an outage fail with RWS_FALLBACK_UNREADABLE naming that file, not with an internal error; the run that reaches the vault only warns', async () => {
    const { key } = await newKey();
    const file = join(runtimeDir, 'jobs');
    writeFileSync(file, '');
    const path = join(file, 'nightly', 'copy.bin');
    const hint = `move ${file} aside, or give --fallback=PATH in a directory of yours`;
    const offline = await run(key, ['--offline', `--fallback=${path}`]);
    expect([offline.exitCode, offline.stdout]).toEqual([125, '']);
    expect(errorLines(offline.stderr)).toEqual([`run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${path} cannot be reached: ${file} is not a directory (ENOTDIR) (hint: ${hint})`]);
    const online = await run(key, [`--fallback=${path}`]);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(online.stderr).toContain(`warning RWS_FALLBACK_NOT_WRITTEN: the fallback cache ${path} cannot be reached: ${file} is not a directory (ENOTDIR); no new copy written, the previous one, if any, stays (${hint})\n`);
    await killServer();
    const outage = await run(key, [`--fallback=${path}`, '--retries', '0']);
    expect(outage.exitCode).toBe(125);
    expect(errorLines(outage.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNREADABLE: the vault is unavailable (RWS_VAULT_UNREACHABLE), and the fallback cache ${path} cannot be reached: ${file} is not a directory (ENOTDIR) (hint: ${hint})`,
    ]);
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)("a directory this user may not enter (nobody, with root's HOME kept by sudo -u): RWS_FALLBACK_UNREADABLE naming it, with the way to one's own", async () => {
    await withClosedHome('home', async ({ key, shared, closed }) => {
    const job = (flags: string[], env: Record<string, string>) => asNobody(['-e', 'prod', '-k', 'JOB_*', ...flags, '--', 'true'], { RWS_API_KEY: key, ...env }, shared);
    const home = await job(['--offline'], { HOME: closed });
    expect(home.exitCode).toBe(125);
    expect(errorLines(home.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${closed}/\\.local/state/run-with-secrets/fallback/[0-9a-f]{32}\\.bin cannot be reached: you \\(uid 65534\\) may not enter ${closed} \\(EACCES: mode 700, owned by uid 0\\) \\(hint: run with your own HOME \\(sudo -H\\), or point XDG_STATE_HOME at a directory of yours, or give --fallback=PATH\\)$`,
        ),
      ),
    ]);
    const chosen = join(closed, 'jobs', 'copy.bin');
    const path = await job(['--offline', `--fallback=${chosen}`], {});
    expect(errorLines(path.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${chosen} cannot be reached: you (uid 65534) may not enter ${closed} (EACCES: mode 700, owned by uid 0) (hint: give --fallback=PATH in a directory of yours, or have uid 0 let you into ${closed})`,
    ]);
    // A sudo without -H: root's run made the default place in nobody's own HOME, every directory
    // it needed root's and 0700. The way out is root's chown of the first of them, not a HOME of one's own.
    const theirs = join(shared, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    expect((await run(key, ['--fallback'], { HOME: theirs, XDG_STATE_HOME: '' })).exitCode).toBe(0);
    const rootMade = join(theirs, '.local');
    const sudoLeft = await job(['--offline'], { HOME: theirs });
    expect(errorLines(sudoLeft.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${rootMade}/state/run-with-secrets/fallback/[0-9a-f]{32}\\.bin cannot be reached: you \\(uid 65534\\) may not enter ${rootMade} \\(EACCES: mode 700, owned by uid 0\\) \\(hint: root made it \\(sudo without -H keeps your HOME\\): sudo chown -R 65534 ${rootMade}, then run again\\)$`,
        ),
      ),
    ]);
    execFileSync('chown', ['-R', '65534', rootMade]);
    const fixed = await job(['--offline'], { HOME: theirs });
    expect(fixed.exitCode, fixed.stderr).toBe(0);
    // Their own directory, closed to themselves (chmod 600): the check of its mode passes, the copy's open does not.
    const own = join(shared, 'own');
    mkdirSync(own);
    chownSync(own, 65534, 65534);
    chmodSync(own, 0o600);
    const shut = await job(['--offline', `--fallback=${join(own, 'copy.bin')}`], {});
    expect(errorLines(shut.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${join(own, 'copy.bin')} cannot be reached: you (uid 65534) may not enter ${own} (EACCES: mode 600, owned by uid 65534) (hint: chmod u+x ${own})`,
    ]);
    // The copy itself closed to its owner (chmod 000): the chmod that opens it, not "check the permissions".
    chmodSync(own, 0o700);
    const closedCopy = join(own, 'copy.bin');
    writeFileSync(closedCopy, '', { mode: 0o000 });
    chownSync(closedCopy, 65534, 65534);
    chmodSync(closedCopy, 0o000);
    const unread = await job(['--offline', `--fallback=${closedCopy}`], {});
    expect(errorLines(unread.stderr)).toEqual([
      `run-with-secrets: error RWS_FALLBACK_UNREADABLE: the fallback cache ${closedCopy} cannot be reached: you (uid 65534) may not read it (EACCES: mode 0, owned by uid 65534) (hint: chmod 600 ${closedCopy})`,
    ]);
    });
  }, 60_000);
});

describe('offline uses queued in a directory others may reach', () => {
  const offlineUses = (id: string) => auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use' && row.api_key_id === id);

  it('the queue open to group or others: the run that reaches the vault goes on, the uses stay queued and unreported, one warning says why and the chmod; closed again, they are sent', async () => {
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect((await run(key, ['--offline'])).exitCode).toBe(0);
    const queue = `${join(cacheDir(), cacheFiles()[0]!)}.uses`;
    const queued = readdirSync(queue);
    expect(queued).toHaveLength(1);
    chmodSync(queue, 0o777);
    const online = await run(key);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout)).toMatchObject(VALUES);
    expect(online.stderr).toBe(
      `run-with-secrets: warning RWS_FALLBACK_UNSAFE: the offline-use queue ${queue} is refused: it is open to group or others (mode 777); 1 offline use(s) stay queued, unreported (chmod 700 ${queue}: uses are queued 0600 in a 0700 directory (a run from the copy narrows it too))`,
    );
    expect(readdirSync(queue)).toEqual(queued);
    expect(offlineUses(id)).toEqual([]);
    chmodSync(queue, 0o700);
    const fixed = await run(key);
    expect([fixed.exitCode, fixed.stderr]).toEqual([0, '']);
    expect(readdirSync(queue)).toEqual([]);
    expect(offlineUses(id)).toHaveLength(1);
  }, 60_000);

  it('a run from the copy whose queue is a link: it runs, not through the link, and the warning says why its use went unrecorded', async () => {
    const { key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    const queue = `${join(cacheDir(), cacheFiles()[0]!)}.uses`;
    const target = join(runtimeDir, 'elsewhere');
    mkdirSync(target, { mode: 0o700 });
    symlinkSync(target, queue);
    const offline = await run(key, ['--offline']);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(offline.stderr.split('\n').filter((line) => line.includes('RWS_FALLBACK_NOT_RECORDED'))).toEqual([
      `run-with-secrets: warning RWS_FALLBACK_NOT_RECORDED: could not queue this offline use for the vault's audit log in ${queue}: the offline-use queue ${queue} is refused: it is a symbolic link, not a directory (rm ${queue} (a link goes without its target); a run from the copy makes it again)`,
    ]);
    expect(readdirSync(target)).toEqual([]);
  }, 60_000);

  it('--fallback=PATH whose directory others may write: its queue is not read either, where another key\'s could have been renamed in', async () => {
    const { id, key } = await newKey();
    const { jobs, path, queue } = await copyAtPathWithUse(key);
    chmodSync(jobs, 0o775);
    const online = await run(key, [`--fallback=${path}`]);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(online.stderr.split('\n').filter((line) => line.includes('warning RWS_FALLBACK_UNSAFE'))).toEqual([
      `run-with-secrets: warning RWS_FALLBACK_UNSAFE: the fallback cache ${path} is refused: its directory ${jobs} may be written by group or others (mode 775); 1 offline use(s) stay queued, unreported (chmod go-w ${jobs}, or give --fallback=PATH in a directory of yours that only you can write)`,
    ]);
    expect(readdirSync(queue)).toHaveLength(1);
    expect(offlineUses(id)).toEqual([]);
    chmodSync(jobs, 0o755);
    expect((await run(key, [`--fallback=${path}`])).stderr).toBe('');
    expect(readdirSync(queue)).toEqual([]);
    expect(offlineUses(id)).toHaveLength(1);
  }, 60_000);
});

describe("offline uses the queue's own directory keeps from the vault", () => {
  const offlineUses = (id: string) => auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use' && row.api_key_id === id);

  it.skipIf(process.getuid?.() !== 0)("a queue of the user's own they may not write (0500), list (0300) or reach (its copy's directory 0600), or an entry they may not read (000): the run goes on, one warning with the chmod, the uses stay queued; fixed, they are sent", async () => {
    const { id, key } = await newKey();
    const shared = makeSharedDir();
    try {
      const { home, dir, queue } = await nobodysCopy(shared, key);
      const online = () => asNobody(['-e', 'prod', '-k', 'JOB_*', '--fallback', '--', 'true'], { HOME: home, RWS_API_KEY: key }, shared);
      const queued = readdirSync(queue);
      expect(queued).toHaveLength(1);
      const notReported = (stderr: string) => stderr.split('\n').filter((line) => line.includes('RWS_FALLBACK_NOT_REPORTED'));

      chmodSync(queue, 0o500);
      const unwritable = await online();
      expect(unwritable.exitCode, unwritable.stderr).toBe(0);
      expect(unwritable.stderr).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REPORTED: 1 offline use(s) queued in ${queue} cannot be reported: you (uid 65534) may not read and write ${queue} (EACCES: mode 500); they stay queued (chmod 700 ${queue})`,
      );
      chmodSync(queue, 0o300);
      const unlisted = await online();
      expect(unlisted.exitCode, unlisted.stderr).toBe(0);
      expect(unlisted.stderr).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REPORTED: the offline uses queued in ${queue} cannot be reported: you (uid 65534) may not read and write ${queue} (EACCES: mode 300); they stay queued (chmod 700 ${queue})`,
      );
      chmodSync(queue, 0o700);
      chmodSync(dir, 0o600);
      const unreachable = await online();
      expect(unreachable.exitCode, unreachable.stderr).toBe(0);
      expect(notReported(unreachable.stderr)).toEqual([
        `run-with-secrets: warning RWS_FALLBACK_NOT_REPORTED: the offline uses queued in ${queue} cannot be reported: you (uid 65534) may not enter ${dir} (EACCES: mode 600, owned by uid 65534); they stay queued (chmod u+x ${dir})`,
      ]);
      chmodSync(dir, 0o700);
      // An entry they may not read says nothing of what it holds: kept, not dropped as malformed.
      const entry = join(queue, queued[0]!);
      chmodSync(entry, 0o000);
      const unread = await online();
      expect(unread.exitCode, unread.stderr).toBe(0);
      expect(unread.stderr).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REPORTED: 1 offline use(s) queued in ${queue} cannot be reported: you (uid 65534) may not read ${entry} (EACCES: mode 0); they stay queued (chmod 600 ${entry})`,
      );
      expect(readdirSync(queue)).toEqual(queued);
      expect(offlineUses(id)).toEqual([]);

      chmodSync(entry, 0o600);
      const fixed = await online();
      expect([fixed.exitCode, fixed.stderr]).toEqual([0, '']);
      expect(readdirSync(queue)).toEqual([]);
      expect(offlineUses(id)).toHaveLength(1);
    } finally {
      removeDir(shared);
    }
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)("--fallback=PATH whose queue is another user's: the warnings' hint is of that PATH, not of XDG_STATE_HOME, which changes nothing there", async () => {
    const { key } = await newKey();
    const { jobs, path, queue } = await copyAtPathWithUse(key);
    chownSync(queue, 65534, 65534);
    const hint = "it is uid 65534's: run as that user, or give --fallback=PATH in a directory of yours; do not remove it";
    const online = await run(key, [`--fallback=${path}`]);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(online.stderr).toBe(
      `run-with-secrets: warning RWS_FALLBACK_UNSAFE: the offline-use queue ${queue} is refused: it is owned by uid 65534, not by you (uid 0); 1 offline use(s) stay queued, unreported (${hint})`,
    );
    const offline = await run(key, ['--offline', `--fallback=${path}`]);
    expect(offline.stderr).toContain(`warning RWS_FALLBACK_NOT_RECORDED: could not queue this offline use for the vault's audit log in ${queue}: the offline-use queue ${queue} is refused: it is owned by uid 65534, not by you (uid 0) (${hint})`);
  }, 60_000);

  it('an entry the queue cannot remove (a directory by an entry\'s name): the run goes on where it failed with RWS_INTERNAL, one warning, and the uses after it wait', async () => {
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect((await run(key, ['--offline'])).exitCode).toBe(0);
    const queue = `${join(cacheDir(), cacheFiles()[0]!)}.uses`;
    const odd = join(queue, '0000000000001-1-000000000000.json');
    mkdirSync(odd);
    const online = await run(key);
    expect(online.exitCode, online.stderr).toBe(0);
    expect(JSON.parse(online.stdout)).toMatchObject(VALUES);
    expect(online.stderr).toBe(
      `run-with-secrets: warning RWS_FALLBACK_NOT_REPORTED: 2 offline use(s) queued in ${queue} cannot be reported: ${odd} is a directory, not an entry the queue wrote (ERR_FS_EISDIR); they stay queued (move it out of ${queue})`,
    );
    expect(offlineUses(id)).toEqual([]);
    rmSync(odd, { recursive: true });
    expect((await run(key)).stderr).toBe('');
    expect(offlineUses(id)).toHaveLength(1);
  }, 60_000);
});

describe('the offline-use queue under a reused pid', () => {
  /** Passes requests to the server, except the offline-use reports while `hold` is set: those are held unanswered. */
  async function holdingProxy(): Promise<{ url: string; hold: (on: boolean) => void; down: (on: boolean) => void; close: () => Promise<void> }> {
    let hold = false;
    let down = false;
    const backend = new URL(url);
    const proxy: Server = createServer((req, res) => {
      if (down) return void req.resume(), res.writeHead(503).end();
      if (hold && req.url === '/api/v1/fallback/uses') return void req.resume();
      forward(backend, req, res);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = proxy.address() as { port: number };
    return {
      url: `http://127.0.0.1:${address.port}`,
      hold: (on) => (hold = on),
      down: (on) => (down = on),
      close: () => new Promise((resolve) => (proxy.closeAllConnections(), proxy.close(() => resolve()))),
    };
  }

  it('a reporter SIGKILLed holding a claim, and the next run with the same pid (pid 1 of a container): the claimed use is still reported', async (context) => {
    const unshare = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];
    if (!(await execa(unshare[0]!, [...unshare.slice(1), 'true']).then(() => true, () => false))) return context.skip();
    const { key } = await newKey();
    const lb = await holdingProxy();
    try {
      const env = baseEnv(runtimeDir, { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: lb.url, RWS_API_KEY: key });
      const args = ['-e', 'prod', '-k', 'JOB_*', '--fallback', '--retries', '0', '--subject', 'boxed', '--', 'true'];
      // As in a container: the wrapper is pid 1 of its own pid namespace, every time.
      const inBox = () => execa(unshare[0]!, [...unshare.slice(1), BIN, ...args], { reject: false, extendEnv: false, env });
      expect((await inBox()).exitCode).toBe(0);
      lb.down(true);
      for (const _ of [1, 2]) expect((await inBox()).stderr).toContain('RWS_FALLBACK_USED');
      const queue = `${join(cacheDir(), cacheFiles()[0]!)}.uses`;
      expect(readdirSync(queue)).toHaveLength(2);

      lb.down(false);
      lb.hold(true);
      const reporter = inBox();
      await until(async () => readdirSync(queue).some((name) => name.endsWith('.sending-1')), 10_000);
      reporter.kill('SIGKILL');
      await reporter;
      lb.hold(false);

      const back = await inBox();
      expect(back.exitCode, back.stderr).toBe(0);
      expect(readdirSync(queue)).toEqual([]);
      expect(auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use' && String(row.subject).startsWith('boxed '))).toHaveLength(2);
    } finally {
      await lb.close();
    }
  }, 60_000);
});

describe('what counts as the vault being away', () => {
  /**
   * A load balancer in front of the real server: it passes requests through, or answers every
   * one with `status` itself, as a proxy does when its backend is down or failing.
   */
  async function balancer(): Promise<{ url: string; answer: (status: number | undefined) => void; close: () => Promise<void> }> {
    let status: number | undefined;
    const backend = new URL(url);
    const proxy: Server = createServer((req, res) => {
      if (status !== undefined) {
        req.resume();
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'RWS_INTERNAL', message: 'backend' } }));
        return;
      }
      forward(backend, req, res);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const address = proxy.address() as { port: number };
    return { url: `http://127.0.0.1:${address.port}`, answer: (next) => (status = next), close: () => new Promise((resolve) => proxy.close(() => resolve())) };
  }

  it('502, 503 and 504 use the copy; 500 and 429 do not, and leave it', async () => {
    const { key } = await newKey();
    const lb = await balancer();
    try {
      const through = (flags: string[] = ['--fallback', '--retries', '0']) => rws(['-e', 'prod', '-k', 'JOB_*', ...flags, '--', fixture('print-env.mjs')], { RWS_API_KEY: key, RWS_VAULT_URL: lb.url });
      expect((await through()).exitCode).toBe(0);
      expect(cacheFiles()).toHaveLength(1);
      for (const status of [502, 503, 504]) {
        lb.answer(status);
        const result = await through();
        expect(result.exitCode, `${status}: ${result.stderr}`).toBe(0);
        expect(JSON.parse(result.stdout)).toMatchObject(VALUES);
        expect(result.stderr).toContain('warning RWS_FALLBACK_USED: the vault is unavailable (RWS_VAULT_UNAVAILABLE)');
      }
      for (const [status, code] of [[500, 'RWS_VAULT_UNAVAILABLE'], [429, 'RWS_VAULT_RATE_LIMITED']] as const) {
        lb.answer(status);
        const result = await through();
        expect(result.exitCode).toBe(125);
        expect(result.stdout).toBe('');
        expect(result.stderr).toContain(`error ${code}`);
        expect(result.stderr).not.toContain('RWS_FALLBACK_USED');
        expect(cacheFiles()).toHaveLength(1);
      }
    } finally {
      await lb.close();
    }
  }, 60_000);

  it('with no copy, an outage fails with the vault\'s own error and says there was none; --offline with none fails with RWS_FALLBACK_MISSING', async () => {
    const { key } = await newKey();
    await killServer();
    const outage = await run(key, ['--fallback', '--retries', '0']);
    expect(outage.exitCode).toBe(125);
    expect(outage.stderr).toContain('warning RWS_FALLBACK_MISSING: no fallback cache at');
    expect(outage.stderr).toContain('error RWS_VAULT_UNREACHABLE');
    const offline = await run(key, ['--offline']);
    expect(offline.exitCode).toBe(125);
    expect(offline.stderr).toContain('error RWS_FALLBACK_MISSING: --offline: there is no fallback cache at');
  }, 60_000);
});

describe('flags', () => {
  it('refuses --offline or --fallback with --watch, local files, --per-key-requests, and a --fallback PATH given with a space', async () => {
    const { key } = await newKey();
    const cases: Array<[string[], string]> = [
      [['--env-file', '/dev/null', '--fallback'], '--fallback, --fallback-max-age and --offline apply to the vault'],
      [['--offline', '--per-key-requests'], '--fallback and --offline need the batch endpoint'],
      [['--fallback', '--fallback-max-age', '1h30m'], '--fallback-max-age expects a duration such as 30m, 24h or 7d (one whole number and one unit: s, m, h or d; at least 1s), got "1h30m"'],
      // Written as a duration, but none a copy could ever be young enough for: the range is said.
      [['--fallback', '--fallback-max-age', '0s'], '--fallback-max-age must be at least 1s (a copy is never younger than that), got "0s"'],
      [['--fallback', join(runtimeDir, 'x.bin')], 'unknown command'],
      [['--fallback-max-age', '1h'], '--fallback-max-age needs --fallback or --offline'],
      [['--offline', '--watch'], '--offline cannot be combined with --watch: an offline run hears of no changes'],
      [['--fallback', '--watch'], '--fallback cannot be combined with --watch'],
    ];
    for (const [flags, message] of cases) {
      const result = await rws(['-e', 'prod', ...flags, '--', 'true'], { RWS_API_KEY: key });
      expect(result.exitCode, flags.join(' ')).toBe(125);
      expect(result.stderr).toContain(message);
    }
  }, 60_000);

  it('--fallback=PATH keeps the copy there; fallback clean removes it, or every copy in the default place', async () => {
    const { key } = await newKey();
    const path = join(runtimeDir, 'jobs', 'nightly.bin');
    mkdirSync(join(runtimeDir, 'jobs'));
    chmodSync(join(runtimeDir, 'jobs'), 0o777);
    const open = await run(key, [`--fallback=${path}`]);
    expect(open.exitCode).toBe(0);
    expect(open.stderr).toContain(`warning RWS_FALLBACK_NOT_WRITTEN: the fallback cache ${path} is refused: its directory ${join(runtimeDir, 'jobs')} may be written by group or others (mode 777); no new copy written`);
    expect(existsSync(path)).toBe(false);
    // The user's directory is not narrowed: 0755 of theirs is fine.
    chmodSync(join(runtimeDir, 'jobs'), 0o755);
    expect((await run(key, [`--fallback=${path}`])).exitCode).toBe(0);
    expect(lstatSync(path).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(runtimeDir, 'jobs')).mode & 0o777).toBe(0o755);
    expect((await run(key)).exitCode).toBe(0);
    expect(cacheFiles()).toHaveLength(1);
    const one = await rws(['fallback', 'clean', `--fallback=${path}`], {});
    expect(one.stdout).toBe(`removed 1 fallback copy from ${join(runtimeDir, 'jobs')}`);
    expect(existsSync(path)).toBe(false);
    expect(cacheFiles()).toHaveLength(1);
    const all = await rws(['fallback', 'clean'], {});
    expect(all.exitCode, all.stderr).toBe(0);
    expect(all.stdout).toBe(`removed 1 fallback copy from ${cacheDir()}`);
    expect(cacheFiles()).toEqual([]);
    // A PATH of any name is a copy all the same: counted as one, where only a name in .bin was.
    const named = join(runtimeDir, 'jobs', 'nightly.cache');
    expect((await run(key, [`--fallback=${named}`])).exitCode).toBe(0);
    const other = await rws(['fallback', 'clean', `--fallback=${named}`], {});
    expect([other.exitCode, other.stdout]).toEqual([0, `removed 1 fallback copy from ${join(runtimeDir, 'jobs')}`]);
    expect(existsSync(named)).toBe(false);
    // A PATH that names a file of another kind (a slip of the hand) leaves it, and says so.
    const config = join(runtimeDir, 'jobs', 'config.yaml');
    writeFileSync(config, 'keep: me\n', { mode: 0o600 });
    const slip = await rws(['fallback', 'clean', `--fallback=${config}`], {});
    expect([slip.exitCode, slip.stdout]).toEqual([0, `removed 0 fallback copies from ${join(runtimeDir, 'jobs')}`]);
    expect(slip.stderr).toContain(`warning RWS_FALLBACK_NOT_REMOVED: ${config} is not a fallback copy (it does not begin as one); left in place`);
    expect(readFileSync(config, 'utf8')).toBe('keep: me\n');
    // A PATH that names a directory (here `--fallback=jobs` beside it) removes nothing of it.
    writeFileSync(join(runtimeDir, 'jobs', 'keep-me.txt'), 'mine\n');
    mkdirSync(join(runtimeDir, 'jobs', 'nested'));
    const wrong = await rws(['fallback', 'clean', `--fallback=${join(runtimeDir, 'jobs')}`], {});
    expect(wrong.exitCode, wrong.stderr).toBe(0);
    expect(wrong.stderr).toContain(`warning RWS_FALLBACK_NOT_REMOVED: ${join(runtimeDir, 'jobs')} is not a fallback copy (a directory); left in place`);
    expect(readFileSync(join(runtimeDir, 'jobs', 'keep-me.txt'), 'utf8')).toBe('mine\n');
    expect(existsSync(join(runtimeDir, 'jobs', 'nested'))).toBe(true);
  }, 60_000);
});

describe('removing copies where the path cannot be followed', () => {
  it('fallback clean where a file stands for a directory: nothing can be there, so it exits 0 and says which file is in the way', async () => {
    const file = join(runtimeDir, 'not-a-dir');
    writeFileSync(file, '');
    const defaultPlace = await rws(['fallback', 'clean'], { XDG_STATE_HOME: file });
    const dir = join(file, 'run-with-secrets', 'fallback');
    expect([defaultPlace.exitCode, defaultPlace.stdout]).toEqual([0, `removed 0 fallback copies from ${dir}`]);
    expect(defaultPlace.stderr).toBe(`run-with-secrets: warning RWS_FALLBACK_UNREADABLE: no fallback copy can be in ${dir}: ${file} is not a directory (ENOTDIR); nothing to remove`);
    const chosen = await rws(['fallback', 'clean', `--fallback=${join(file, 'copy.bin')}`], {});
    expect([chosen.exitCode, chosen.stdout]).toEqual([0, `removed 0 fallback copies from ${file}`]);
    expect(chosen.stderr).toBe(`run-with-secrets: warning RWS_FALLBACK_UNREADABLE: no fallback copy can be in ${file}: ${file} is not a directory (ENOTDIR); nothing to remove`);
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)('fallback clean that cannot enter the directory, or remove what is in it: one error naming the directory, its mode and the fix, and exit 125; the uses it removed are counted, those it left are not', async () => {
    await withClosedHome('root-home', async ({ key, shared, closed }) => {
    const entered = await asNobody(['fallback', 'clean'], { HOME: closed }, shared);
    expect([entered.exitCode, entered.stdout]).toEqual([125, '']);
    expect(entered.stderr).toBe(
      `run-with-secrets: error RWS_FALLBACK_UNREADABLE: cannot clean ${closed}/.local/state/run-with-secrets/fallback: you (uid 65534) may not enter ${closed} (EACCES: mode 700, owned by uid 0) (hint: it is uid 0's: run as that user, or with a HOME of your own (sudo -H))`,
    );

    const { home, dir, queue } = await nobodysCopy(shared, key);
    chmodSync(queue, 0o500);
    const shutQueue = await asNobody(['fallback', 'clean'], { HOME: home }, shared);
    expect([shutQueue.exitCode, shutQueue.stdout]).toEqual([125, `removed 1 fallback copy from ${dir}`]);
    expect(shutQueue.stderr).toBe(
      `run-with-secrets: error RWS_FALLBACK_NOT_REMOVED: 1 fallback copy or queue was left in ${dir}: you (uid 65534) may not read and write ${queue} (EACCES: mode 500) (hint: chmod 700 ${queue})`,
    );
    expect(readdirSync(queue)).toHaveLength(1);
    chmodSync(queue, 0o700);
    chmodSync(dir, 0o500);
    const shutDir = await asNobody(['fallback', 'clean'], { HOME: home }, shared);
    expect([shutDir.exitCode, shutDir.stdout]).toEqual([125, `removed 0 fallback copies from ${dir}`]);
    // The queue's entries went (its directory is writable); the queue itself could not.
    expect(shutDir.stderr.split('\n')).toEqual([
      "run-with-secrets: warning RWS_FALLBACK_UNREPORTED: 1 offline use(s) were never reported to the vault's audit log, and now never will be",
      `run-with-secrets: error RWS_FALLBACK_NOT_REMOVED: 1 fallback copy or queue was left in ${dir}: you (uid 65534) may not read and write ${dir} (EACCES: mode 500) (hint: chmod 700 ${dir})`,
    ]);
    chmodSync(dir, 0o700);
    const fixed = await asNobody(['fallback', 'clean'], { HOME: home }, shared);
    expect([fixed.exitCode, fixed.stdout, fixed.stderr]).toEqual([0, `removed 0 fallback copies from ${dir}`, '']);
    expect(readdirSync(dir).filter((name) => !name.endsWith('.refused'))).toEqual([]);

    // A --fallback=PATH directory is the user's own (0755 is fine): only the owner's bits are asked for.
    const jobs = join(home, 'jobs');
    const path = join(jobs, 'nightly.bin');
    mkdirSync(jobs, { mode: 0o755 });
    chownSync(jobs, 65534, 65534);
    expect((await asNobody(['-e', 'prod', '-k', 'JOB_*', `--fallback=${path}`, '--', 'true'], { HOME: home, RWS_API_KEY: key }, shared)).exitCode).toBe(0);
    chmodSync(jobs, 0o555);
    const chosen = await asNobody(['fallback', 'clean', `--fallback=${path}`], { HOME: home }, shared);
    expect([chosen.exitCode, chosen.stdout]).toEqual([125, `removed 0 fallback copies from ${jobs}`]);
    expect(chosen.stderr).toBe(
      `run-with-secrets: error RWS_FALLBACK_NOT_REMOVED: 1 fallback copy or queue was left in ${jobs}: you (uid 65534) may not read and write ${jobs} (EACCES: mode 555) (hint: chmod u+rwx ${jobs})`,
    );
    expect(existsSync(path)).toBe(true);
    });
  }, 60_000);

  it.skipIf(process.getuid?.() !== 0)("a 401 whose key's copies sit in a directory the user may not change (0500) or enter (0600): one warning with the mode and the chmod, where it said fallback clean would do, or nothing at all; with HOME a file, nothing to say", async () => {
    const shared = makeSharedDir();
    try {
      const revoked = async (mode: number, copyMode = 0o600) => {
        const { id, key } = await newKey();
        const { home, dir } = await nobodysCopy(shared, key);
        const copy = join(dir, readdirSync(dir).find((name) => name.endsWith('.bin'))!);
        await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
        chmodSync(copy, copyMode);
        chmodSync(dir, mode);
        const result = await asNobody(['-e', 'prod', '-k', 'JOB_*', '--', 'true'], { HOME: home, RWS_API_KEY: key }, shared);
        chmodSync(dir, 0o700);
        removeDir(home);
        return { result, dir, copy };
      };
      const unwritable = await revoked(0o500);
      expect(unwritable.result.exitCode).toBe(125);
      expect(unwritable.result.stderr.split('\n')[0]).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REMOVED: the vault refused the API key, but the fallback copies made with it in ${unwritable.dir} could not all be removed: you (uid 65534) may not read and write ${unwritable.dir} (EACCES: mode 500) (chmod 700 ${unwritable.dir})`,
      );
      expect(unwritable.result.stderr.split('\n')[1]).toMatch(/^run-with-secrets: error RWS_VAULT_AUTH: /);
      const unentered = await revoked(0o600);
      expect(unentered.result.stderr.split('\n')[0]).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REMOVED: the vault refused the API key, but the fallback copies made with it in ${unentered.dir} could not all be removed: you (uid 65534) may not enter ${unentered.dir} (EACCES: mode 600, owned by uid 65534) (chmod u+x ${unentered.dir})`,
      );
      // A copy closed to its owner (chmod 000) may be the key's: named with its chmod, where the
      // warning blamed "something else" (lsattr, a security module) for a directory it may change.
      const closed = await revoked(0o700, 0o000);
      expect(closed.result.stderr.split('\n')[0]).toBe(
        `run-with-secrets: warning RWS_FALLBACK_NOT_REMOVED: the vault refused the API key, but the fallback copies made with it in ${closed.dir} could not all be removed: you (uid 65534) may not read ${closed.copy} (EACCES: mode 0) (chmod 600 ${closed.copy})`,
      );
    } finally {
      removeDir(shared);
    }
    const { id, key } = await newKey();
    await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
    const file = join(runtimeDir, 'not-a-dir');
    writeFileSync(file, '');
    const fileHome = await rws(['-e', 'prod', '-k', 'JOB_*', '--', 'true'], { RWS_API_KEY: key, XDG_STATE_HOME: file });
    expect(fileHome.exitCode).toBe(125);
    expect(fileHome.stderr).toMatch(/^run-with-secrets: error RWS_VAULT_AUTH: [^\n]*$/);
  }, 60_000);
});

describe('loading', () => {
  /** A copy of the install without the fallback's modules: the bundle's chunks that hold it, found by what only they contain. */
  function installWithoutFallback(): string {
    const copy = join(runtimeDir, 'install');
    for (const entry of ['bin', 'dist', 'package.json']) cpSync(join(ROOT, entry), join(copy, entry), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
    const chunks = readdirSync(join(copy, 'dist/cli')).filter((name) => /\.c?js$/.test(name) && /RWS_TEST_CLOCK_AHEAD_SECONDS|hkdfSync/.test(readFileSync(join(copy, 'dist/cli', name), 'utf8')));
    expect(chunks.length).toBeGreaterThan(0);
    for (const chunk of chunks) rmSync(join(copy, 'dist/cli', chunk));
    rmSync(join(copy, 'dist/fallback'), { recursive: true });
    return join(copy, 'bin/run-with-secrets.js');
  }

  it('a plain vault run never loads the fallback: it works from an install that lacks those modules, and --fallback then does not', async () => {
    const { key } = await newKey();
    const bin = installWithoutFallback();
    const env = baseEnv(runtimeDir, { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key });
    const plain = await execa(bin, ['-e', 'prod', '-k', 'JOB_*', '--', fixture('print-env.mjs')], { reject: false, extendEnv: false, env });
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout)).toMatchObject(VALUES);
    const withFallback = await execa(bin, ['-e', 'prod', '-k', 'JOB_*', '--fallback', '--', fixture('print-env.mjs')], { reject: false, extendEnv: false, env });
    expect(withFallback.exitCode).toBe(125);
    expect(cacheFiles()).toEqual([]);
  }, 60_000);

  it('a 401 whose copies cannot be removed (the fallback\'s modules missing) says so in one line, and the run fails with the 401 as it would have', async () => {
    const { id, key } = await newKey();
    expect((await run(key)).exitCode).toBe(0);
    expect(cacheFiles()).toHaveLength(1);
    await cliOk(['apikey', 'revoke', id, '--store', store.dir]);
    const bin = installWithoutFallback();
    const env = baseEnv(runtimeDir, { XDG_STATE_HOME: stateHome, RWS_VAULT_URL: url, RWS_API_KEY: key });
    const plain = await execa(bin, ['-e', 'prod', '-k', 'JOB_*', '--', fixture('print-env.mjs')], { reject: false, extendEnv: false, env });
    printed.push(plain.stdout, plain.stderr);
    expect(plain.exitCode).toBe(125);
    expect(plain.stdout).toBe('');
    const lines = plain.stderr.split('\n').filter((line) => line !== '');
    expect(lines).toEqual([
      // dist/cli/loader.cjs reads a chunk itself: a missing one is ENOENT.
      expect.stringMatching(/^run-with-secrets: warning RWS_FALLBACK_NOT_REMOVED: the vault refused the API key, but the fallback copies made with it could not all be removed \([A-Z_]+\); run-with-secrets fallback clean removes every copy$/),
      expect.stringMatching(/^run-with-secrets: error RWS_VAULT_AUTH: the vault at \S+ refused the API key while minting a token: it is invalid, expired or revoked/),
    ]);
    expect(cacheFiles()).toHaveLength(1);
  }, 60_000);
});
