// Long-polls on replicas: two HTTPS `serve` processes on one PostgreSQL database, each serving
// its own checkout of the store (as a GitOps deployment would): one ETag across replicas, 304s
// charged in the shared state, each replica woken by changes to its own files, a revocation on
// one seen by a request held on the other, and SIGTERM over TLS while requests are held.
import { execFile } from 'node:child_process';
import { copyFile, cp, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cliOk, makeStore, type Reply, type RunningServer, startServer, type TestStore, tlsAgent } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

const VALUES = { SERVICE_B_KEY: 'b-key-value', SERVICE_B_URL: 'https://b' };

let store: TestStore;
/** The second replica's checkout: the same keys and identity, files of its own. */
let checkout: string;
let db: { url: string; drop(): Promise<void> };
let env: Record<string, string>;
let tls: string[];
let agent: Agent;
let a: RunningServer;
let b: RunningServer;
let apiKey: { id: string; key: string };

async function createKey(): Promise<{ id: string; key: string }> {
  const out = await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'watch', '--environment', 'production', '--key-pattern', 'SERVICE_B_*'], { env });
  return { id: /^id: (\S+)$/m.exec(out)?.[1] as string, key: /^key: (\S+)$/m.exec(out)?.[1] as string };
}

function batch(server: RunningServer, t: string, etag?: string, wait?: number): Promise<Reply> {
  return call(`${server.url}/api/v1/vault/secrets/batch${wait === undefined ? '' : `?wait=${wait}`}`, {
    auth: t,
    json: { environment: 'production' },
    headers: etag === undefined ? {} : { 'if-none-match': etag },
    dispatcher: agent,
  });
}

const setIn = (dir: string, name: string, value: string) => cliOk(['secret', 'set', 'production', name, '--store', dir], { input: value, env });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  store = await makeStore({ production: VALUES });
  checkout = path.join(store.root, 'checkout');
  await cp(store.dir, checkout, { recursive: true, preserveTimestamps: true });
  db = await testDatabase();
  env = { RWS_DATABASE_URL: db.url };
  const cert = path.join(store.root, 'cert.pem');
  const key = path.join(store.root, 'key.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
  tls = ['--tls-cert', cert, '--tls-key', key];
  agent = tlsAgent(await readFile(cert, 'utf8'));
  apiKey = await createKey();
  [a, b] = await Promise.all([startServer(store, tls, env), startServer({ ...store, dir: checkout }, tls, env)]);
}, 90_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await agent?.close();
  await db?.drop();
  await store?.cleanup();
});

/** A token minted over our TLS agent. */
async function tokenOn(server: RunningServer, extra: Record<string, unknown> = {}, key = apiKey.key): Promise<string> {
  const reply = await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 'watch', environment: 'production', key_pattern: 'SERVICE_B_*', ...extra }, dispatcher: agent });
  if (reply.status !== 201) throw new Error(`mint answered ${reply.status}`);
  return reply.body.token as string;
}

describe('two HTTPS replicas on one PostgreSQL, each with its own checkout', () => {
  it('tag alike, and a 304 from one is charged in the shared state: a limit-1 token is spent for both', async () => {
    const fromA = await batch(a, await tokenOn(a));
    const fromB = await batch(b, await tokenOn(b));
    expect(fromA.status).toBe(200);
    expect(fromA.headers.get('etag')).toMatch(/^"v1-/);
    expect(fromB.headers.get('etag')).toBe(fromA.headers.get('etag'));
    const t = await tokenOn(a, { usage_limit: 1 });
    expect((await batch(b, t, fromA.headers.get('etag') as string)).status).toBe(304);
    const spent = await batch(a, t, fromA.headers.get('etag') as string);
    expect(spent.status).toBe(401);
    expect(spent.body.error.code).toBe('RWS_TOKEN_EXHAUSTED');
  });

  it('each wakes on a change to its own files: an edit of one checkout wakes that replica, and the other once its checkout has it', async () => {
    const etag = (await batch(a, await tokenOn(a))).headers.get('etag') as string;
    const onA = batch(a, await tokenOn(a), etag, 30);
    const onB = batch(b, await tokenOn(b), etag, 30);
    let bAnswered = false;
    void onB.then(() => (bAnswered = true));
    await sleep(500);
    await setIn(store.dir, 'SERVICE_B_KEY', 'rotated-on-a');
    const changedA = await onA;
    expect(changedA.status).toBe(200);
    expect(changedA.body.secrets.SERVICE_B_KEY).toBe('rotated-on-a');
    // B serves its own checkout, which has not changed: it keeps holding.
    await sleep(1500);
    expect(bAnswered).toBe(false);
    // The checkout catches up (a git pull, a sync): B wakes with the same values and the same tag.
    await copyFile(path.join(store.dir, 'production.enc.yaml'), path.join(checkout, '.production.tmp'));
    await rename(path.join(checkout, '.production.tmp'), path.join(checkout, 'production.enc.yaml'));
    const changedB = await onB;
    expect(changedB.status).toBe(200);
    expect(changedB.body.secrets.SERVICE_B_KEY).toBe('rotated-on-a');
    expect(changedB.headers.get('etag')).toBe(changedA.headers.get('etag'));
  }, 60_000);

  it('is not woken by a re-encryption of the same values on its checkout', async () => {
    const etag = (await batch(b, await tokenOn(b))).headers.get('etag') as string;
    const started = Date.now();
    const held = batch(b, await tokenOn(b), etag, 3);
    await sleep(300);
    await setIn(checkout, 'SERVICE_B_URL', VALUES.SERVICE_B_URL);
    const reply = await held;
    expect(reply.status).toBe(304);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
  });

  it('answers a request held on B with 401 when its token is revoked through A', async () => {
    const etag = (await batch(a, await tokenOn(a))).headers.get('etag') as string;
    const t = await tokenOn(a);
    const held = batch(b, t, etag, 30);
    await sleep(500);
    expect((await call(`${a.url}/api/v1/vault/tokens/revoke`, { method: 'POST', auth: t, dispatcher: agent })).status).toBe(204);
    const revokedAt = Date.now();
    const reply = await held;
    expect(reply.status).toBe(401);
    expect(reply.body.error.code).toBe('RWS_TOKEN_REVOKED');
    expect(Date.now() - revokedAt).toBeLessThan(12_000);
  }, 30_000);

  it('answers held requests over TLS at SIGTERM and exits, while the other replica goes on', async () => {
    const c = await startServer({ ...store, dir: checkout }, tls, env);
    const etag = (await batch(c, await tokenOn(c))).headers.get('etag') as string;
    const tokens = await Promise.all([1, 2, 3].map(() => tokenOn(c)));
    const held = tokens.map((t) => batch(c, t, etag, 60));
    await sleep(800);
    const started = Date.now();
    const exit = c.stop('SIGTERM');
    expect((await Promise.all(held)).map((reply) => reply.status)).toEqual([304, 304, 304]);
    expect(await exit).toBe(0);
    expect(Date.now() - started).toBeLessThan(4000);
    const rows = (await cliOk(['audit', '--json', '--event', 'secret.batch', '--limit', '50', '--store', store.dir], { env })).trim().split('\n').map((line) => JSON.parse(line));
    for (const t of tokens) {
      const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti;
      expect(rows.filter((row) => row.jti === jti).map((row) => row.status)).toEqual([304]);
    }
    expect((await batch(a, await tokenOn(a), etag)).status).toBe(304);
  }, 30_000);
});
