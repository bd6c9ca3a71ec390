// The console's server side over real HTTP, on SQLite and PostgreSQL: its files and headers,
// sign-in (429 limits, admin keys only, same origin), the session cookie's flags, CSRF and Origin
// on changes, idle expiry, sign-out and revocation, a sign-in ending the session the browser
// held; the status and chart routes; and a server without --console that loads none of the
// console's code.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCa } from '../../vault-client/helpers/test-ca.js';
import { testDatabase } from '../../helpers/postgres.js';
import { countRows, tamper } from '../state/conformance.js';
import { storePaths } from '../../../src/server/store/layout.js';
import { call, cliOk, makeStore, type Reply, type RunningServer, startServer, type TestStore } from '../helpers/server.js';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const TRACE = fileURLToPath(new URL('../../fixtures/trace-imports.mjs', import.meta.url));

type Backend = { name: string; database(): Promise<{ url: string | undefined; env: Record<string, string>; drop(): Promise<void> }> };
const BACKENDS: Backend[] = [
  { name: 'SQLite', database: async () => ({ url: undefined, env: {}, drop: async () => undefined }) },
  {
    name: 'PostgreSQL',
    database: async () => {
      const db = await testDatabase();
      return { url: db.url, env: { RWS_DATABASE_URL: db.url }, drop: db.drop };
    },
  },
];

async function createKey(store: TestStore, env: Record<string, string>, extra: string[]): Promise<{ id: string; key: string }> {
  const out = await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'test', ...extra], { env });
  return { id: /^id: (\S+)$/m.exec(out)?.[1] as string, key: /^key: (\S+)$/m.exec(out)?.[1] as string };
}

const cookieOf = (reply: Reply): string => (reply.headers.get('set-cookie') ?? '').split(';')[0] as string;

/** What the database keeps of a session id: an HMAC under the store's pepper, which the database never holds. */
async function storedHash(store: TestStore, id: string): Promise<string> {
  const pepper = await readFile(path.join(store.dir, 'api-key-pepper'), 'utf8');
  return createHmac('sha256', pepper).update(`rws-console-session:${id}`).digest('hex');
}

describe.each(BACKENDS)('console sessions on $name', (backend) => {
  let store: TestStore;
  let server: RunningServer;
  let env: Record<string, string>;
  let url: string | undefined;
  let drop: () => Promise<void>;
  let admin: { id: string; key: string };
  let reader: { id: string; key: string };

  beforeAll(async () => {
    ({ url, env, drop } = await backend.database());
    store = await makeStore();
    await cliOk(['secret', 'import', 'production', '--format', 'json', '--store', store.dir], { input: JSON.stringify({ DB_URL: 'console-db-url-value' }), env });
    admin = await createKey(store, env, ['--admin']);
    reader = await createKey(store, env, ['--environment', 'production', '--key-pattern', '*']);
    server = await startServer(store, ['--console'], env);
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
    await store?.cleanup();
    await drop?.();
  });

  const origin = () => server.url;
  const signIn = (key: string, headers: Record<string, string> = { origin: origin() }, dispatcher?: Agent) =>
    call(`${server.url}/console/api/session`, { method: 'POST', auth: key, headers, dispatcher });
  async function session(): Promise<{ cookie: string; csrf: string; reply: Reply }> {
    const reply = await signIn(admin.key);
    expect(reply.status).toBe(201);
    return { cookie: cookieOf(reply), csrf: reply.body.csrf_token, reply };
  }

  it('serves the console with the strict policy, and nothing else under /console/', async () => {
    const page = await call(`${server.url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.text).toContain('<script type="module" src="app.js"></script>');
    expect(page.text).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=/);
    for (const reply of [page, await call(`${server.url}/console/app.js`), await call(`${server.url}/console/app.css`), await call(`${server.url}/console/nope`), await call(`${server.url}/api/v1/auth/keys`)]) {
      expect(reply.headers.get('content-security-policy')).toBe(CSP);
      expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
      expect(reply.headers.get('referrer-policy')).toBe('no-referrer');
      expect(reply.headers.get('cache-control')).toBe('no-store');
    }
    const script = await call(`${server.url}/console/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(script.text.length).toBeLessThan(150 * 1024);
    expect(script.text).not.toMatch(/\beval\(|new Function\(/);
    expect((await call(`${server.url}/console/nope`)).status).toBe(404);
    expect((await call(`${server.url}/console/../api/v1/audit`)).status).not.toBe(200);
    expect((await call(`${server.url}/console/`, { method: 'POST', body: 'x' })).status).toBe(405);
    const bare = await call(`${server.url}/console`);
    expect(bare.status).toBe(200); // fetch followed the 308 to /console/
    expect(bare.text).toContain('app.js');
  });

  it('signs in with an admin key only, from the console origin, and counts failures toward the 429 limit', async () => {
    const agent = new Agent({ localAddress: '127.0.0.71' });
    try {
      expect((await signIn(admin.key, {}, agent)).status).toBe(403);
      expect((await signIn(admin.key, { origin: 'https://evil.example' }, agent)).status).toBe(403);
      const read = await signIn(reader.key, { origin: origin() }, agent);
      expect(read.status).toBe(403);
      expect(read.headers.get('set-cookie')).toBeNull();
      const statuses: number[] = [];
      for (let i = 0; i < 23; i++) statuses.push((await signIn(`rws_sk_${String(i).padStart(32, '0')}`, { origin: origin() }, agent)).status);
      // The two sign-ins from no or another origin showed no credential: they count too.
      expect(statuses.slice(0, 19).every((status) => status === 401)).toBe(true);
      expect(statuses.slice(19)).toEqual([429, 429, 429, 429]);
      // A valid admin key is never locked out by the address's failures.
      expect((await signIn(admin.key, { origin: origin() }, agent)).status).toBe(201);
    } finally {
      await agent.close();
    }
    const failures = (await call(`${server.url}/api/v1/audit?outcome=failure&limit=1000`, { auth: admin.key })).body.events;
    // 19 bad keys, two foreign origins and the read key.
    expect(failures.filter((e: { client: string }) => e.client === '127.0.0.71').length).toBeGreaterThanOrEqual(22);
  });

  it('sets an HttpOnly, SameSite=Strict cookie; stores only a hash of it; needs CSRF and Origin on changes', async () => {
    const { cookie, csrf, reply } = await session();
    const flags = reply.headers.get('set-cookie') as string;
    expect(flags).toMatch(/^rws_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    expect(reply.body).toMatchObject({ signed_in: true, api_key_id: admin.id, idle_timeout_seconds: 900, csrf_token: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    expect(JSON.stringify(reply.body)).not.toContain(admin.key);
    const id = cookie.split('=')[1] as string;
    expect(Date.parse(reply.body.expires_at) - Date.now()).toBeGreaterThan(8 * 3600_000 - 60_000);
    // Only a hash is kept: the id itself is nowhere in the database.
    expect(await sessionRow(store, url, await storedHash(store, id))).toMatchObject({ api_key_id: admin.id });
    expect(await sessionRowsHolding(store, url, id)).toBe(0);

    const listed = await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } });
    expect(listed.status).toBe(200);
    // What the browser says of where a request came from (Fetch Metadata): only the console's own
    // pages, or an address typed, may use the session; a neighbour on the same site may not.
    for (const [site, status] of [['same-origin', 200], ['none', 200], ['same-site', 403], ['cross-site', 403]] as const) {
      for (const route of ['/api/v1/auth/keys', '/console/api/session']) {
        expect({ site, route, status: (await call(`${server.url}${route}`, { headers: { cookie, 'sec-fetch-site': site } })).status }).toEqual({ site, route, status });
      }
    }
    expect(listed.body.keys.map((k: { id: string }) => k.id)).toContain(admin.id);
    const body = { name: 'made-by-session', environments: ['production'], key_patterns: ['*'] };
    const post = (headers: Record<string, string>) => call(`${server.url}/api/v1/auth/keys`, { method: 'POST', json: body, headers: { cookie, ...headers } });
    expect((await post({ origin: origin() })).status).toBe(403);
    expect((await post({ origin: origin(), 'x-csrf-token': 'x'.repeat(43) })).status).toBe(403);
    expect((await post({ 'x-csrf-token': csrf })).status).toBe(403);
    expect((await post({ origin: 'http://evil.example', 'x-csrf-token': csrf })).status).toBe(403);
    const made = await post({ origin: origin(), 'x-csrf-token': csrf });
    expect(made.status).toBe(201);
    // A session's rows name the admin key, like a Bearer request's.
    const rows = (await call(`${server.url}/api/v1/audit?event=apikey.create&limit=10`, { auth: admin.key })).body.events;
    expect(rows[0]).toMatchObject({ api_key_id: admin.id, outcome: 'success', subject: made.body.id });
    // A session cookie of someone else's making (not an id) or a forged one is a 401 that clears it.
    for (const forged of ['rws_session=nope', `rws_session=${'A'.repeat(43)}`]) {
      const refused = await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie: forged } });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('set-cookie')).toMatch(/^rws_session=; .*Max-Age=0/);
      // RFC 9110 §15.5.2: a 401 MUST carry a challenge; these routes take a Bearer key too.
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('honours no session row written into the database by hand: one who can write it but lacks the pepper cannot make a cookie', async () => {
    // A SHA-256 of an id of one's own choosing, for a live admin key (ids are in the trail): the
    // row a plain hash let any writer of the database add, and then list keys, tokens and the trail.
    const id = randomBytes(32).toString('base64url');
    const later = new Date(Date.now() + 3600_000).toISOString();
    for (const hash of [createHash('sha256').update(id).digest('hex'), createHmac('sha256', '').update(`rws-console-session:${id}`).digest('hex')]) {
      await tamper(storePaths(store.dir), url, `INSERT INTO console_sessions (id_hash, api_key_id, created_at, last_seen_at, expires_at) VALUES ('${hash}', '${admin.id}', '${new Date().toISOString()}', '${later}', '${later}')`);
    }
    const cookie = `rws_session=${id}`;
    for (const route of ['/api/v1/auth/keys', '/api/v1/audit?limit=1', '/api/v1/vault/tokens', '/console/api/session']) {
      const reply = await call(`${server.url}${route}`, { headers: { cookie } });
      expect([route, reply.status, reply.body?.error?.code]).toEqual([route, 401, 'RWS_AUTH_FAILED']);
    }
  });

  it('ends a session idle for 15 minutes (401), and background polling does not keep it open', async () => {
    const { cookie } = await session();
    const id = cookie.split('=')[1] as string;
    const hash = await storedHash(store, id);
    const old = new Date(Date.now() - 10 * 60_000).toISOString();
    await tamper(storePaths(store.dir), url, `UPDATE console_sessions SET last_seen_at = '${old}' WHERE id_hash = '${hash}'`);
    expect((await call(`${server.url}/api/v1/audit?limit=1`, { headers: { cookie, 'x-rws-background': '1' } })).status).toBe(200);
    expect((await sessionRow(store, url, hash))?.last_seen_at).toBe(old);
    const described = await call(`${server.url}/console/api/session`, { headers: { cookie } });
    expect(described.body).toMatchObject({ signed_in: true, api_key_id: admin.id });
    expect((await sessionRow(store, url, hash))?.last_seen_at).not.toBe(old);
    const stale = new Date(Date.now() - 16 * 60_000).toISOString();
    await tamper(storePaths(store.dir), url, `UPDATE console_sessions SET last_seen_at = '${stale}' WHERE id_hash = '${hash}'`);
    const expired = await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } });
    expect(expired.status).toBe(401);
    expect(expired.body.error.code).toBe('RWS_AUTH_FAILED');
    expect((await call(`${server.url}/console/api/session`, { headers: { cookie } })).status).toBe(401);
    // Without a cookie the page is simply told to sign in.
    expect((await call(`${server.url}/console/api/session`)).body).toEqual({ signed_in: false });
  });

  it('sign-out deletes the session on the server; revoking the key ends its sessions', async () => {
    const first = await session();
    const second = await session();
    const out = (s: { cookie: string; csrf: string }, headers: Record<string, string>) => call(`${server.url}/console/api/session`, { method: 'DELETE', headers: { cookie: s.cookie, ...headers } });
    expect((await out(first, { origin: origin() })).status).toBe(403);
    const done = await out(first, { origin: origin(), 'x-csrf-token': first.csrf });
    expect(done.status).toBe(204);
    expect(done.headers.get('set-cookie')).toMatch(/^rws_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/);
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie: first.cookie } })).status).toBe(401);
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie: second.cookie } })).status).toBe(200);

    const other = await createKey(store, env, ['--admin']);
    const third = await signIn(other.key);
    const cookie = cookieOf(third);
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } })).status).toBe(200);
    expect((await call(`${server.url}/api/v1/auth/keys/${other.id}`, { method: 'DELETE', auth: admin.key })).status).toBe(204);
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } })).status).toBe(401);
    const hash = await storedHash(store, cookie.split('=')[1] as string);
    expect(await sessionRow(store, url, hash)).toBeUndefined();
    expect(await countRows(storePaths(store.dir), url, 'console_sessions')).toBeGreaterThan(0);
  });

  it('a sign-in ends the session the browser held, whichever admin key it was; a refused one leaves it', async () => {
    const elsewhere = await session();
    const first = await session();
    const other = await createKey(store, env, ['--admin']);
    const keys = (cookie: string) => call(`${server.url}/api/v1/auth/keys`, { headers: { cookie } });
    const hashOf = (cookie: string) => storedHash(store, cookie.split('=')[1] as string);
    // A refused sign-in (a read key) is no new start: the held session stands.
    expect((await signIn(reader.key, { origin: origin(), cookie: first.cookie })).status).toBe(403);
    expect((await keys(first.cookie)).status).toBe(200);
    // Another admin key in the same browser: the old cookie is sent with it, and its session ends.
    const second = await signIn(other.key, { origin: origin(), cookie: first.cookie });
    expect(second.status).toBe(201);
    const secondCookie = cookieOf(second);
    expect(secondCookie).not.toBe(first.cookie);
    const ended = await keys(first.cookie);
    expect(ended.status).toBe(401);
    expect(ended.headers.get('set-cookie')).toMatch(/^rws_session=; .*Max-Age=0/);
    expect(await sessionRow(store, url, await hashOf(first.cookie))).toBeUndefined();
    expect(await sessionRow(store, url, await hashOf(secondCookie))).toMatchObject({ api_key_id: other.id });
    // The same key again ends its own earlier session too; another browser's session is not touched.
    const third = await signIn(other.key, { origin: origin(), cookie: secondCookie });
    expect(third.status).toBe(201);
    expect((await keys(secondCookie)).status).toBe(401);
    expect((await keys(cookieOf(third))).status).toBe(200);
    expect((await keys(elsewhere.cookie)).status).toBe(200);
    // A cookie that is not a session id is no session to end: the sign-in goes through.
    expect((await signIn(other.key, { origin: origin(), cookie: 'rws_session=nope' })).status).toBe(201);
    const rows = (await call(`${server.url}/api/v1/audit?event=console.signin&limit=3`, { auth: admin.key })).body.events;
    expect(rows.map((r: { api_key_id: string; status: number }) => [r.api_key_id, r.status])).toEqual([[other.id, 201], [other.id, 201], [other.id, 201]]);
  });

  it('opens no session for a key revoked after it was looked up, and answers as a revoked key does', async () => {
    const held = await session();
    const other = await createKey(store, env, ['--admin']);
    // Looked up once, so PostgreSQL's replica cache holds the key live.
    expect((await signIn(other.key)).status).toBe(201);
    // Revoked behind this server's back (another replica whose notice has not come): on
    // PostgreSQL the cached lookup still finds it live, and the commit must refuse it.
    await tamper(storePaths(store.dir), url, `UPDATE api_keys SET revoked_at = '${new Date().toISOString()}' WHERE id = '${other.id}'`);
    const before = (await sessionRows(store, url)).length;
    const refused = await signIn(other.key, { origin: origin(), cookie: held.cookie });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toMatchObject({ code: 'RWS_AUTH_FAILED', message: 'invalid API key: unknown, revoked or expired; use a live key (secrets-server apikey list shows them)' });
    expect(refused.headers.get('set-cookie')).toBeNull();
    expect((await sessionRows(store, url)).length).toBe(before);
    // Refused, so no new start: the session the browser held stands.
    expect((await call(`${server.url}/api/v1/auth/keys`, { headers: { cookie: held.cookie } })).status).toBe(200);
    const rows = (await call(`${server.url}/api/v1/audit?event=auth.failure&limit=1`, { auth: admin.key })).body.events;
    expect(rows[0]).toMatchObject({ status: 401, error_code: 'RWS_AUTH_FAILED' });
  });

  it('GET /api/v1/admin/status and /api/v1/audit/chart: admin only, computed by the server and its database', async () => {
    const status = await call(`${server.url}/api/v1/admin/status`, { auth: admin.key });
    expect(status.status).toBe(200);
    const version = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')).version;
    expect(status.body).toMatchObject({ state: { kind: url === undefined ? 'sqlite' : 'postgres', schema_version: expect.any(Number) }, server: { version, uptime_seconds: expect.any(Number) } });
    expect(status.body.environments).toEqual([{ name: 'production', digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), error: null }]);
    expect(JSON.stringify(status.body)).not.toContain('console-db-url-value');
    const hour = await call(`${server.url}/api/v1/audit/chart?window=hour`, { auth: admin.key });
    expect(hour.status).toBe(200);
    expect(hour.body).toMatchObject({ window: 'hour', bucket_minutes: 1 });
    expect(Date.parse(hour.body.until) - Date.parse(hour.body.since)).toBe(3600_000);
    const total = hour.body.buckets.reduce((sum: number, b: { success: number; failure: number }) => sum + b.success + b.failure, 0);
    expect(total).toBeGreaterThan(20);
    expect(hour.body.buckets.reduce((sum: number, b: { failure: number }) => sum + b.failure, 0)).toBeGreaterThanOrEqual(20);
    const day = await call(`${server.url}/api/v1/audit/chart?window=day`, { auth: admin.key });
    expect(day.body).toMatchObject({ window: 'day', bucket_minutes: 10 });
    for (const bad of ['window=week', 'window=', 'window=hour&window=day', 'other=1']) expect((await call(`${server.url}/api/v1/audit/chart?${bad}`, { auth: admin.key })).status).toBe(400);
    for (const route of ['/api/v1/admin/status', '/api/v1/audit/chart?window=hour']) {
      expect((await call(`${server.url}${route}`, { auth: reader.key })).status).toBe(403);
      expect((await call(`${server.url}${route}`)).status).toBe(401);
    }
    const reads = (await call(`${server.url}/api/v1/audit?api_key_id=${admin.id}&event=status.read&limit=5`, { auth: admin.key })).body.events;
    expect(reads.length).toBeGreaterThan(0);
  });
});

describe('without --console', () => {
  it('serves no console, honours no session cookie, and loads none of the console code; with TLS the cookie is Secure and __Host-', async () => {
    const store = await makeStore();
    const dir = await mkdtemp(path.join(tmpdir(), 'rws-trace-'));
    const trace = path.join(dir, 'imports.txt');
    try {
      const admin = await createKey(store, {}, ['--admin']);
      const plain = await startServer(store, [], { NODE_OPTIONS: `--import ${TRACE}`, RWS_TRACE_IMPORTS: trace });
      try {
        expect((await call(`${plain.url}/console/`)).status).toBe(404);
        expect((await call(`${plain.url}/console/api/session`, { method: 'POST', auth: admin.key, headers: { origin: plain.url } })).status).toBe(404);
        expect((await call(`${plain.url}/api/v1/auth/keys`, { headers: { cookie: `rws_session=${'A'.repeat(43)}` } })).status).toBe(401);
        expect((await call(`${plain.url}/api/v1/auth/keys`, { auth: admin.key })).status).toBe(200);
      } finally {
        expect(await plain.stop()).toBe(0);
      }
      const loaded = await readFile(trace, 'utf8');
      expect(loaded).toContain('/dist/server/http/app.js');
      expect(loaded).not.toMatch(/\/server\/console\/|preact|htm/);

      const ca = await makeTestCa(dir);
      const tls = await startServer(store, ['--console', '--tls-cert', ca.serverCert, '--tls-key', ca.serverKey]);
      const dispatcher = new Agent({ connect: { ca: await readFile(ca.caCert, 'utf8') } });
      try {
        const reply = await call(`${tls.url}/console/api/session`, { method: 'POST', auth: admin.key, headers: { origin: tls.url }, dispatcher });
        expect(reply.status).toBe(201);
        expect(reply.headers.get('set-cookie')).toMatch(/^__Host-rws_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800; Secure$/);
        const cookie = cookieOf(reply);
        expect((await call(`${tls.url}/api/v1/auth/keys`, { headers: { cookie }, dispatcher })).status).toBe(200);
        // The plain-HTTP name is not honoured under TLS (a sibling host could have planted it).
        expect((await call(`${tls.url}/api/v1/auth/keys`, { headers: { cookie: cookie.replace('__Host-', '') }, dispatcher })).status).toBe(401);
        expect((await call(`${tls.url}/console/api/session`, { method: 'POST', auth: admin.key, headers: { origin: tls.url.replace('https:', 'http:') }, dispatcher })).status).toBe(403);
      } finally {
        await dispatcher.close();
        expect(await tls.stop()).toBe(0);
      }
    } finally {
      await store.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

async function sessionRow(store: TestStore, url: string | undefined, hash: string): Promise<Record<string, string> | undefined> {
  return (await sessionRows(store, url)).find((row) => row.id_hash === hash);
}

async function sessionRowsHolding(store: TestStore, url: string | undefined, text: string): Promise<number> {
  return (await sessionRows(store, url)).filter((row) => JSON.stringify(row).includes(text)).length;
}

async function sessionRows(store: TestStore, url: string | undefined): Promise<Array<Record<string, string>>> {
  if (url === undefined) {
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(storePaths(store.dir).stateDb, { readonly: true });
    try {
      return db.prepare('SELECT * FROM console_sessions').all() as Array<Record<string, string>>;
    } finally {
      db.close();
    }
  }
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('SELECT * FROM console_sessions')).rows;
  } finally {
    await client.end();
  }
}
