// The admin HTTP API end to end, on SQLite and on PostgreSQL: the built bin serving a store made
// by its own commands, an admin key made with `apikey create --admin`, and every route driven
// over HTTP. Whatever the routes answer, and whatever the audit trail holds, is searched for the
// values, keys and tokens seen: none may appear after creation.
import { createHash, createHmac } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateIdentity, identityToRecipient } from 'age-encryption';
import { parse as parseYaml } from 'yaml';
import { Agent } from 'undici';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSopsFile, openSopsFile } from '../../../src/sops/index.js';
import { auditRowsSync, call, cli, cliOk, makeStore, rawRequest, type Reply, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';
import { BACKENDS } from '../helpers/backends.js';

const SECRETS = { production: { SERVICE_B_KEY: 'b-key-value-admin-1', DB_PASSWORD: 'db-pass-admin-2' }, staging: { ONLY: 'staging-admin-3' } };

/**
 * A GET whose target goes out exactly as written (URL parsers resolve `..` and `%2e%2e` first,
 * and fetch drops a bare trailing `?`).
 */
async function exactPath(base: string, route: string, key: string): Promise<{ status: number; text: string }> {
  const { request } = await import('node:http');
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path: route, method: 'GET', headers: { authorization: `Bearer ${key}` } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.each(BACKENDS)('admin API on $name', (backend) => {
  let store: TestStore;
  let server: RunningServer;
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  let admin: { id: string; key: string };
  let reader: { id: string; key: string };
  const values: string[] = Object.values(SECRETS).flatMap((v) => Object.values(v));
  const credentials: string[] = [];
  const answers: string[] = [];
  const fromAddress = (n: number) => new Agent({ localAddress: `127.0.0.${n}` });

  async function createKey(extra: string[]): Promise<{ id: string; key: string }> {
    const out = await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'test', ...extra], { env });
    const made = { id: /^id: (\S+)$/m.exec(out)?.[1] as string, key: /^key: (\S+)$/m.exec(out)?.[1] as string };
    credentials.push(made.key);
    return made;
  }

  /** An admin call; every answer is kept to be searched for leaks at the end. */
  async function as(key: string, method: string, route: string, json?: unknown, dispatcher?: Agent): Promise<Reply> {
    const reply = await call(`${server.url}${route}`, { method, auth: key, json, dispatcher });
    answers.push(reply.text);
    return reply;
  }
  const asAdmin = (method: string, route: string, json?: unknown) => as(admin.key, method, route, json);

  beforeAll(async () => {
    ({ env, drop } = await backend.database());
    store = await makeStore();
    for (const [environment, secrets] of Object.entries(SECRETS)) {
      await cliOk(['secret', 'import', environment, '--format', 'json', '--store', store.dir], { input: JSON.stringify(secrets), env });
    }
    admin = await createKey(['--admin']);
    reader = await createKey(['--environment', 'production', '--environment', 'staging', '--key-pattern', '*']);
    server = await startServer(store, [], env);
  });

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
    await store?.cleanup();
    await drop?.();
  });

  it('apikey create --admin takes no grants; admin keys are listed as such', async () => {
    const refused = await cli(['apikey', 'create', '--store', store.dir, '--name', 'x', '--admin', '--environment', 'production'], { env });
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr).toContain('--admin key takes no --environment');
    const bare = await cli(['apikey', 'create', '--store', store.dir, '--name', 'x'], { env });
    expect(bare.exitCode).toBe(2);
    const listed = (await cliOk(['apikey', 'list', '--json', '--store', store.dir], { env })).trim().split('\n').map((line) => JSON.parse(line));
    expect(listed.find((k) => k.id === admin.id)).toMatchObject({ admin: true, environments: [], key_patterns: [] });
    expect(listed.find((k) => k.id === reader.id)).toMatchObject({ admin: false });
  });

  it('a read key gets 403 RWS_FORBIDDEN on every admin route; an admin key mints no token and reads no secret', async () => {
    const routes: Array<[string, string, unknown?]> = [
      ['POST', '/api/v1/auth/keys', { name: 'x', environments: ['production'], key_patterns: ['*'] }],
      ['GET', '/api/v1/auth/keys'],
      ['GET', `/api/v1/auth/keys/${admin.id}`],
      ['DELETE', `/api/v1/auth/keys/${admin.id}`],
      ['GET', '/api/v1/vault/tokens?active=true'],
      ['DELETE', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAAAAAAAA'],
      ['GET', '/api/v1/audit'],
      ['GET', '/api/v1/admin/environments'],
      ['GET', '/api/v1/admin/environments/production/secrets'],
      ['PUT', '/api/v1/admin/environments/production/secrets/SERVICE_B_KEY', { value: 'stolen' }],
      ['DELETE', '/api/v1/admin/environments/production/secrets/SERVICE_B_KEY'],
    ];
    for (const [method, route, json] of routes) {
      const reply = await as(reader.key, method, route, json);
      expect({ method, route, status: reply.status, code: reply.body?.error?.code }).toEqual({ method, route, status: 403, code: 'RWS_FORBIDDEN' });
    }
    const minted = await as(admin.key, 'POST', '/api/v1/vault/tokens/generate', { subject: 's', environment: 'production', key_pattern: '*' });
    expect(minted.status).toBe(403);
    expect(minted.body.error.code).toBe('RWS_FORBIDDEN');
    expect(minted.body.token).toBeUndefined();
    // The admin key is no token either: reading with it is a 401.
    expect((await as(admin.key, 'GET', '/api/v1/vault/production/SERVICE_B_KEY', undefined, fromAddress(40))).status).toBe(401);
    expect((await as(admin.key, 'GET', '/api/v1/vault/production', undefined, fromAddress(40))).status).toBe(401);
    // Still untouched by the refused PUT and DELETE.
    const t = await token(server, reader.key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    credentials.push(t);
    expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).body.value).toBe('b-key-value-admin-1');
  });

  it('creates a key (shown once), lists and shows it with its live tokens, and revokes it with its tokens', async () => {
    const created = await asAdmin('POST', '/api/v1/auth/keys', { name: 'ci', environments: ['production'], key_patterns: ['SERVICE_B_*'], max_ttl_minutes: 10, expires_at: '2099-01-01T00:00:00Z' });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual(['admin', 'created_at', 'environments', 'expires_at', 'fallback', 'grants_intact', 'id', 'key', 'key_patterns', 'last_used_at', 'live_tokens', 'max_ttl_minutes', 'name', 'revoked_at']);
    expect(created.body).toMatchObject({ name: 'ci', admin: false, fallback: true, environments: ['production'], key_patterns: ['SERVICE_B_*'], max_ttl_minutes: 10, expires_at: '2099-01-01T00:00:00.000Z', live_tokens: 0 });
    const { id, key } = created.body as { id: string; key: string };
    expect(key).toMatch(/^rws_sk_[0-9a-f]{32}$/);
    credentials.push(key);
    const t1 = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const t2 = await token(server, key, { environment: 'production', key_pattern: 'SERVICE_B_*', usage_limit: 1 });
    credentials.push(t1, t2);
    const listed = await asAdmin('GET', '/api/v1/auth/keys');
    const entry = listed.body.keys.find((k: { id: string }) => k.id === id);
    expect(entry).toMatchObject({ id, name: 'ci', live_tokens: 2, revoked_at: null, last_used_at: expect.any(String) });
    expect(entry.key).toBeUndefined();
    expect(entry.hash).toBeUndefined();
    expect(entry.prefix).toBeUndefined();
    expect((await asAdmin('GET', `/api/v1/auth/keys/${id}`)).body).toEqual(entry);
    await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t2 });
    expect((await asAdmin('GET', `/api/v1/auth/keys/${id}`)).body.live_tokens).toBe(1);

    const revoked = await asAdmin('DELETE', `/api/v1/auth/keys/${id}`);
    expect(revoked.status).toBe(204);
    expect(revoked.text).toBe('');
    const after = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t1, dispatcher: fromAddress(41) });
    expect(after.body.error.code).toBe('RWS_TOKEN_REVOKED');
    expect((await call(`${server.url}/api/v1/vault/tokens/generate`, { auth: key, json: { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, dispatcher: fromAddress(41) })).status).toBe(401);
    const shown = (await asAdmin('GET', `/api/v1/auth/keys/${id}`)).body;
    expect(shown).toMatchObject({ revoked_at: expect.any(String), live_tokens: 0 });
    expect((await asAdmin('DELETE', `/api/v1/auth/keys/${id}`)).status).toBe(204);
    expect((await asAdmin('GET', `/api/v1/auth/keys/${id}`)).body.revoked_at).toBe(shown.revoked_at);
    expect((await asAdmin('GET', '/api/v1/auth/keys/ak_0000000000000000')).status).toBe(404);
    expect((await asAdmin('DELETE', '/api/v1/auth/keys/ak_0000000000000000')).status).toBe(404);

    // An admin key made over HTTP is an admin key.
    const second = await asAdmin('POST', '/api/v1/auth/keys', { name: 'ops-2', admin: true });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ admin: true, environments: [], key_patterns: [] });
    credentials.push(second.body.key);
    expect((await as(second.body.key, 'GET', '/api/v1/auth/keys')).status).toBe(200);
  });

  it('answers a created key with the Location of its record (RFC 9110 §15.3.2)', async () => {
    const created = await asAdmin('POST', '/api/v1/auth/keys', { name: 'located', admin: true });
    credentials.push(created.body.key);
    expect(created.headers.get('location')).toBe(`/api/v1/auth/keys/${created.body.id}`);
    const shown = await asAdmin('GET', created.headers.get('location') as string);
    expect([shown.status, shown.body.id]).toEqual([200, created.body.id]);
  });

  it('creates a key from a body whose optional fields are null, as the record shows them: taken as absent; a null flag stays refused', async () => {
    const created = await asAdmin('POST', '/api/v1/auth/keys', { name: 'nulls', environments: ['production'], key_patterns: ['SERVICE_B_*'], max_ttl_minutes: null, expires_at: null });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ admin: false, fallback: true, max_ttl_minutes: null, expires_at: null });
    credentials.push(created.body.key);
    const admin = await asAdmin('POST', '/api/v1/auth/keys', { name: 'nulls-admin', admin: true, environments: null, key_patterns: null, max_ttl_minutes: null });
    expect([admin.status, admin.body.admin]).toEqual([201, true]);
    credentials.push(admin.body.key);
    expect((await asAdmin('POST', '/api/v1/auth/keys', { name: null, admin: true })).body.error.code).toBe('RWS_BAD_REQUEST');
    // A falsy "no" more likely than an unset field: fallback: null must not allow the offline copy.
    for (const flags of [{ admin: null }, { fallback: null }]) {
      const refused = await asAdmin('POST', '/api/v1/auth/keys', { name: 'flags', environments: ['production'], key_patterns: ['SERVICE_B_*'], ...flags });
      expect([refused.status, refused.body.error.message]).toEqual([400, `${Object.keys(flags)[0]} must be true or false`]);
    }
  });

  it('lists tokens by key and liveness, and revokes one by its jti', async () => {
    const t = await token(server, reader.key, { environment: 'staging', key_pattern: 'ONLY', usage_limit: 5 });
    credentials.push(t);
    const jti = JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti as string;
    const live = await asAdmin('GET', `/api/v1/vault/tokens?api_key_id=${reader.id}&active=true`);
    expect(live.status).toBe(200);
    const record = live.body.tokens.find((entry: { jti: string }) => entry.jti === jti);
    expect(record).toEqual({ jti, api_key_id: reader.id, subject: 'test', environment: 'staging', key_pattern: 'ONLY', issued_at: expect.any(String), expires_at: expect.any(String), uses: 0, usage_limit: 5, revoked_at: null });
    expect(live.body.tokens.every((entry: { api_key_id: string }) => entry.api_key_id === reader.id)).toBe(true);
    expect((await asAdmin('DELETE', `/api/v1/vault/tokens/${jti}`)).status).toBe(204);
    const refused = await call(`${server.url}/api/v1/vault/staging/ONLY`, { auth: t, dispatcher: fromAddress(42) });
    expect(refused.body.error.code).toBe('RWS_TOKEN_REVOKED');
    expect((await asAdmin('GET', `/api/v1/vault/tokens?api_key_id=${reader.id}&active=true`)).body.tokens.some((entry: { jti: string }) => entry.jti === jti)).toBe(false);
    const all = await asAdmin('GET', `/api/v1/vault/tokens?api_key_id=${reader.id}&active=false&limit=1000`);
    expect(all.body.tokens.find((entry: { jti: string }) => entry.jti === jti).revoked_at).toEqual(expect.any(String));
    expect((await asAdmin('DELETE', `/api/v1/vault/tokens/${jti}`)).status).toBe(204);
    expect((await asAdmin('DELETE', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAAAAAAAA')).status).toBe(404);
  });

  it('sets and deletes secrets write-only, under the lock, keeping the file recipients; the change is read back through a token', async () => {
    const route = (environment: string, name: string) => `/api/v1/admin/environments/${environment}/secrets/${name}`;
    expect((await asAdmin('PUT', route('production', 'NEW_SECRET'), { value: 'new-value-admin-4' })).status).toBe(204);
    values.push('new-value-admin-4');
    const t = await token(server, reader.key, { environment: 'production', key_pattern: '*' });
    credentials.push(t);
    // Read your own write: this server forgets its copy of the file at once.
    expect((await call(`${server.url}/api/v1/vault/production/NEW_SECRET`, { auth: t })).body.value).toBe('new-value-admin-4');
    expect((await asAdmin('PUT', route('production', 'NEW_SECRET'), { value: 'new-value-admin-5' })).status).toBe(204);
    values.push('new-value-admin-5');
    expect((await call(`${server.url}/api/v1/vault/production/NEW_SECRET`, { auth: t })).body.value).toBe('new-value-admin-5');
    expect((await asAdmin('GET', '/api/v1/admin/environments/production/secrets')).body).toEqual({ environment: 'production', names: ['SERVICE_B_KEY', 'DB_PASSWORD', 'NEW_SECRET'] });
    const environments = await asAdmin('GET', '/api/v1/admin/environments');
    const health = await call(`${server.url}/healthz`);
    expect(environments.body.environments.find((e: { name: string }) => e.name === 'production')).toEqual({ name: 'production', secrets: 3, digest: health.body.environments.production.digest, changed_at: expect.any(String), error: null });
    expect((await asAdmin('DELETE', route('production', 'NEW_SECRET'))).status).toBe(204);
    expect((await call(`${server.url}/api/v1/vault/production/NEW_SECRET`, { auth: t })).status).toBe(404);
    expect((await asAdmin('DELETE', route('production', 'NEW_SECRET'))).status).toBe(404);
    expect((await asAdmin('DELETE', route('nowhere', 'NEW_SECRET'))).status).toBe(404);
    expect((await asAdmin('GET', '/api/v1/admin/environments/nowhere/secrets')).status).toBe(404);

    // A file encrypted to two recipients keeps both through an edit.
    const [identity, other] = [(await readFile(path.join(store.dir, 'age-identity.txt'), 'utf8')).split('\n').find((line) => line.startsWith('AGE-SECRET-KEY-')) as string, await generateIdentity()];
    const file = path.join(store.dir, 'team.enc.yaml');
    await writeFile(file, await createSopsFile({ FIRST: 'team-value-admin-6' }, [await identityToRecipient(identity), await identityToRecipient(other)]), { mode: 0o600 });
    values.push('team-value-admin-6');
    const recipients = (text: string) => (parseYaml(text).sops.age as Array<{ recipient: string }>).map((r) => r.recipient).sort();
    const before = recipients(await readFile(file, 'utf8'));
    expect((await asAdmin('PUT', route('team', 'SECOND'), { value: 'team-value-admin-7' })).status).toBe(204);
    values.push('team-value-admin-7');
    const text = await readFile(file, 'utf8');
    expect(recipients(text)).toEqual(before);
    expect((await openSopsFile(text, [other])).decrypt('SECOND')).toBe('team-value-admin-7');

    // Many edits at once over HTTP and from the CLI lose none: one lock for both.
    const names = Array.from({ length: 12 }, (_, i) => `PARALLEL_${i}`);
    await Promise.all(
      names.map((name, i) =>
        i % 3 === 0
          ? cliOk(['secret', 'set', 'staging', name, '--store', store.dir], { input: `parallel-${i}`, env })
          : asAdmin('PUT', route('staging', name), { value: `parallel-${i}` }).then((reply) => expect(reply.status).toBe(204)),
      ),
    );
    values.push(...names.map((_, i) => `parallel-${i}`));
    await until(async () => (await asAdmin('GET', '/api/v1/admin/environments/staging/secrets')).body.names.length === 13);
    expect((await asAdmin('GET', '/api/v1/admin/environments/staging/secrets')).body.names.sort()).toEqual(['ONLY', ...names].sort());

    // Names the wrapper refuses to inject are set from the server's host only.
    for (const name of ['LD_PRELOAD', 'RWS_API_KEY', 'NODE_OPTIONS']) {
      const reply = await asAdmin('PUT', route('production', name), { value: 'x' });
      expect({ name, status: reply.status, code: reply.body.error.code }).toEqual({ name, status: 400, code: 'RWS_NAME_INVALID' });
    }
  });

  it('refuses a name the sops rule leaves unencrypted with 400, naming the environment, never a path on the server', async () => {
    // An existing file (its own rule) and a new one (the default rule) are refused alike.
    for (const environment of ['production', 'scratch']) {
      const reply = await asAdmin('PUT', `/api/v1/admin/environments/${environment}/secrets/LEAK_unencrypted`, { value: 'plain-value-admin-9' });
      expect({ environment, status: reply.status, body: reply.body }).toEqual({
        environment,
        status: 400,
        body: { error: { code: 'RWS_BAD_REQUEST', message: `the sops rule of environment ${environment} (unencrypted_suffix: _unencrypted) leaves LEAK_unencrypted unencrypted: it would be stored in plain text and never served; nothing was written` } },
      });
      expect(reply.text).not.toContain(store.root);
      expect(reply.text).not.toContain('.enc.yaml');
    }
    values.push('plain-value-admin-9');
    expect((await asAdmin('GET', '/api/v1/admin/environments/scratch/secrets')).status).toBe(404);
  });

  it.runIf(backend.name === 'PostgreSQL')('changes no file whose audit row cannot be stored (503), and records nothing', async () => {
    const file = path.join(store.dir, 'production.enc.yaml');
    const before = await readFile(file, 'utf8');
    // Another session holds the audit table: the row's INSERT waits until the statement timeout.
    const blocker = new pg.Client({ connectionString: env.RWS_DATABASE_URL });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE audit IN EXCLUSIVE MODE');
      const reply = await asAdmin('PUT', '/api/v1/admin/environments/production/secrets/UNRECORDED', { value: 'unrecorded-value-admin-8' });
      values.push('unrecorded-value-admin-8');
      expect([reply.status, reply.body.error.code]).toEqual([503, 'RWS_STATE_UNAVAILABLE']);
      expect(await readFile(file, 'utf8')).toBe(before);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
    }
    expect((await asAdmin('GET', '/api/v1/admin/environments/production/secrets')).body.names).not.toContain('UNRECORDED');
    // The server's own state-seen.json is replaced through a temp file at any moment: not the edit's.
    expect((await readdir(store.dir)).filter((name) => name.endsWith('.tmp') && !name.startsWith('.state-seen.json.'))).toEqual([]);
  });

  it('audits every admin request with the admin key and the names touched; pages newest first by cursor; reading is audited', async () => {
    const first = await asAdmin('GET', `/api/v1/audit?api_key_id=${admin.id}&limit=1000`);
    expect(first.status).toBe(200);
    const events: any[] = first.body.events;
    expect(events.every((e) => e.api_key_id === admin.id)).toBe(true);
    const kinds = new Set(events.map((e) => e.event));
    for (const kind of ['apikey.create', 'apikey.revoke', 'token.revoke', 'secret.set', 'secret.delete', 'apikey.list', 'token.list', 'environment.list']) expect(kinds).toContain(kind);
    expect(events.find((e) => e.event === 'secret.set' && e.outcome === 'success')).toMatchObject({ environment: expect.any(String), keys: [expect.stringMatching(/^[A-Z_0-9]+$/)], status: 204 });
    expect(events.find((e) => e.event === 'apikey.create' && e.outcome === 'success').subject).toMatch(/^ak_[0-9a-f]{16}$/);
    expect(events.find((e) => e.event === 'token.revoke' && e.outcome === 'success')).toMatchObject({ jti: expect.any(String), subject: 'test', environment: 'staging' });
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));

    // Paging by 7 walks the same rows (the reads add rows above, never inside the pages).
    const paged: number[] = [];
    let cursor: string | null = null;
    do {
      const page: Reply = await asAdmin('GET', `/api/v1/audit?api_key_id=${admin.id}&limit=7&until=2999-01-01T00:00:00Z${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.body.events.length).toBeLessThanOrEqual(7);
      paged.push(...page.body.events.map((e: { seq: number }) => e.seq));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    expect(paged.filter((seq) => seq <= (seqs[0] as number))).toEqual(seqs);

    const reads = await asAdmin('GET', '/api/v1/audit?event=audit.read&outcome=success&limit=1');
    expect(reads.body.events).toHaveLength(1);
    expect(reads.body.events[0]).toMatchObject({ event: 'audit.read', api_key_id: admin.id, subject: expect.stringContaining('limit=7') });
    expect(reads.body.next_cursor).toEqual(expect.any(String));
    const failures = await asAdmin('GET', `/api/v1/audit?outcome=failure&api_key_id=${reader.id}`);
    expect(failures.body.events.some((e: { status: number; event: string }) => e.status === 403 && e.event === 'secret.set')).toBe(true);
    expect((await asAdmin('GET', '/api/v1/audit?environment=staging&limit=1000')).body.events.every((e: { environment: string }) => e.environment === 'staging')).toBe(true);
    expect((await asAdmin('GET', '/api/v1/audit?since=2999-01-01T00:00:00Z')).body).toEqual({ events: [], next_cursor: null });
    // Edits from the server's host are on record the same way, with client `local`.
    const local = (await asAdmin('GET', '/api/v1/audit?event=secret.set&environment=staging&limit=1000')).body.events.filter((e: { client: string }) => e.client === 'local');
    expect(local.length).toBeGreaterThanOrEqual(4);
    expect(local[0]).toMatchObject({ api_key_id: null, subject: 'secrets-server secret set', keys: [expect.stringMatching(/^PARALLEL_\d+$/)], status: 0 });
  });

  it.each([
    ['unknown field', { name: 'x', environments: ['production'], key_patterns: ['*'], extra: 1 }],
    ['no name', { environments: ['production'], key_patterns: ['*'] }],
    ['a name with a newline', { name: 'a\nb', environments: ['production'], key_patterns: ['*'] }],
    ['a name of 129 characters', { name: 'x'.repeat(129), environments: ['production'], key_patterns: ['*'] }],
    ['environments not a list', { name: 'x', environments: 'production', key_patterns: ['*'] }],
    ['a bad environment', { name: 'x', environments: ['../prod'], key_patterns: ['*'] }],
    ['a reserved environment', { name: 'x', environments: ['tokens'], key_patterns: ['*'] }],
    ['a regex pattern', { name: 'x', environments: ['production'], key_patterns: ['.*'] }],
    ['no grants on a read key', { name: 'x', environments: [], key_patterns: [] }],
    ['101 environments', { name: 'x', environments: Array.from({ length: 101 }, (_, i) => `e${i}`), key_patterns: ['*'] }],
    ['grants on an admin key', { name: 'x', admin: true, environments: ['production'] }],
    ['admin as a string', { name: 'x', admin: 'true' }],
    ['max_ttl_minutes 61', { name: 'x', environments: ['production'], key_patterns: ['*'], max_ttl_minutes: 61 }],
    ['max_ttl_minutes fractional', { name: 'x', environments: ['production'], key_patterns: ['*'], max_ttl_minutes: 1.5 }],
    ['expires_at in the past', { name: 'x', environments: ['production'], key_patterns: ['*'], expires_at: '2000-01-01T00:00:00Z' }],
    ['expires_at not ISO 8601', { name: 'x', environments: ['production'], key_patterns: ['*'], expires_at: 'next tuesday' }],
    ['expires_at 30 February', { name: 'x', environments: ['production'], key_patterns: ['*'], expires_at: '2099-02-30T00:00:00Z' }],
    ['expires_at a number', { name: 'x', environments: ['production'], key_patterns: ['*'], expires_at: 4102444800 }],
  ])('POST /api/v1/auth/keys answers 400 to %s, and creates nothing', async (_what, body) => {
    const before = (await asAdmin('GET', '/api/v1/auth/keys')).body.keys.length;
    const reply = await asAdmin('POST', '/api/v1/auth/keys', body);
    expect(reply.status).toBe(400);
    expect(reply.body.error.code).toBe('RWS_BAD_REQUEST');
    expect(reply.body.key).toBeUndefined();
    expect((await asAdmin('GET', '/api/v1/auth/keys')).body.keys.length).toBe(before);
  });

  it('tells a time whose offset lost its + to the query string (read as a space) to write it %2B', async () => {
    const typed = await asAdmin('GET', '/api/v1/audit?since=2030-01-31T06:00:00+01:00');
    expect([typed.status, typed.body.error]).toEqual([400, { code: 'RWS_BAD_REQUEST', message: "since: a + in a query string reads as a space; write the offset's + as %2B (2030-01-31T06:00:00%2B01:00)" }]);
    expect((await asAdmin('GET', '/api/v1/audit?since=2030-01-31T06:00:00%2B01:00')).status).toBe(200);
    expect((await asAdmin('GET', '/api/v1/audit?until=yesterday')).body.error.message).toBe('until must be an ISO 8601 time such as 2030-01-31T00:00:00Z');
  });

  it('refuses hostile bodies, query parameters and path segments', async () => {
    const status = async (method: string, route: string, json?: unknown) => (await asAdmin(method, route, json)).status;
    // A field given twice: a proxy that checked the first `admin` must not see the server take the last.
    for (const body of ['{"name":"x","admin":false,"admin":true}', '{"name":"x","environments":["staging"],"key_patterns":["*"],"environments":["production"]}', '{"__proto__":{"admin":true},"name":"x","environments":["production"],"key_patterns":["*"]}', '{"constructor":{"prototype":{"admin":true}},"name":"x"}', '[]', 'null', '{']) {
      const reply = await call(`${server.url}/api/v1/auth/keys`, { method: 'POST', auth: admin.key, body, headers: { 'content-type': 'application/json' } });
      expect({ body, status: reply.status }).toEqual({ body, status: 400 });
    }
    const secret = '/api/v1/admin/environments/production/secrets/HOSTILE';
    for (const body of [{}, { value: 1 }, { value: '' }, { value: 'a\u0000b' }, { value: 'x', extra: 1 }, { value: ['x'] }]) {
      expect({ body, status: await status('PUT', secret, body) }).toEqual({ body, status: 400 });
    }
    expect((await asAdmin('GET', '/api/v1/admin/environments/production/secrets')).body.names).not.toContain('HOSTILE');
    for (const query of [
      'limit=0', 'limit=1001', 'limit=01', 'limit=1e3', 'limit=-1', 'limit=', 'limit=1&limit=2', 'nope=1', 'event=secret.read%00', 'event=drop', 'outcome=maybe',
      'api_key_id=ak_1', "api_key_id=ak_0000000000000000'--", 'environment=../x', 'since=yesterday', 'until=2030-13-45T00:00:00Z', 'since=2026-02-30T00:00:00Z', 'until=2027-02-29', 'cursor=xyz', 'cursor=c2VxOi0x', 'cursor=c2VxOjE%3D', `cursor=${'A'.repeat(40)}`,
    ]) {
      expect({ query, status: await status('GET', `/api/v1/audit?${query}`) }).toEqual({ query, status: 400 });
    }
    for (const query of ['active=yes', 'active=true&active=true', 'api_key_id=x', 'limit=1001', 'jti=x']) {
      expect({ query, status: await status('GET', `/api/v1/vault/tokens?${query}`) }).toEqual({ query, status: 400 });
    }
    expect(await status('GET', '/api/v1/auth/keys?x=1')).toBe(400);
    for (const [method, route, expected] of [
      ['GET', '/api/v1/auth/keys/ak_XYZ', 400],
      ['GET', '/api/v1/auth/keys/ak_0000000000000000/x', 404],
      ['GET', '/api/v1/auth/keys/', 404],
      ['DELETE', '/api/v1/vault/tokens/short', 400],
      ['DELETE', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAA.AAAAAAA', 400],
      ['DELETE', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAA%00AAAAAA', 400],
      ['GET', '/api/v1/admin/environments/..%2fetc/secrets', 400],
      ['GET', '/api/v1/admin/environments/tokens/secrets', 400],
      ['PUT', '/api/v1/admin/environments/production/secrets/BAD-NAME', 400],
      ['PUT', '/api/v1/admin/environments/production/secrets/%4BEY', 400],
      ['PUT', '/api/v1/admin/environments/.hidden/secrets/KEY', 400],
      ['GET', '/api/v1/admin/environments/production/secrets/KEY/x', 404],
      ['GET', '/api/v1/admin/nope', 404],
    ] as const) {
      expect({ method, route, status: await status(method, route, method === 'PUT' ? { value: 'v' } : undefined) }).toEqual({ method, route, status: expected });
    }
    // Dot segments as sent (fetch would resolve them first): a segment, never a step up.
    for (const route of ['/api/v1/auth/keys/..', '/api/v1/auth/keys/%2e%2e', '/api/v1/admin/environments/../secrets', '/api/v1/admin/environments/production/secrets/..']) {
      const reply = await exactPath(server.url, route, admin.key);
      expect({ route, status: reply.status }).toEqual({ route, status: route.endsWith('secrets/..') ? 405 : 400 });
    }
    // Strict on every admin route, /metrics included, and for empty segments too (URLSearchParams
    // skips them); a bare `?` is no query at all.
    for (const [route, message] of [
      ['/metrics?foo=1', 'this route takes no query parameters'],
      ['/metrics?a=1&a=2', 'this route takes no query parameters'],
      ['/api/v1/auth/keys?&&&&', 'the query string has an empty parameter (a stray &)'],
      ['/api/v1/auth/keys?&', 'the query string has an empty parameter (a stray &)'],
      ['/api/v1/audit?limit=5&', 'the query string has an empty parameter (a stray &)'],
      ['/api/v1/audit?&limit=5', 'the query string has an empty parameter (a stray &)'],
      ['/api/v1/vault/tokens?active=true&&limit=5', 'the query string has an empty parameter (a stray &)'],
    ]) {
      const reply = await exactPath(server.url, route as string, admin.key);
      answers.push(reply.text);
      expect({ route, status: reply.status, body: JSON.parse(reply.text) }).toEqual({ route, status: 400, body: { error: { code: 'RWS_BAD_REQUEST', message } } });
    }
    for (const route of ['/metrics?', '/api/v1/auth/keys?', '/api/v1/audit?limit=5']) {
      expect({ route, status: (await exactPath(server.url, route, admin.key)).status }).toEqual({ route, status: 200 });
    }
  });

  it('refuses an API key pasted as a key name, a grant or an environment: nothing stores it, so no list, status or /healthz shows it', async () => {
    const pasted = reader.key;
    for (const body of [
      { name: pasted, environments: ['production'], key_patterns: ['*'] },
      { name: `ci ${pasted}`, admin: true },
      { name: 'x', environments: [pasted], key_patterns: ['*'] },
      { name: 'x', environments: ['production'], key_patterns: [pasted] },
    ]) {
      const reply = await asAdmin('POST', '/api/v1/auth/keys', body);
      expect({ body: JSON.stringify(body).length, status: reply.status }).toEqual({ body: JSON.stringify(body).length, status: 400 });
      expect(reply.body.error.message).toMatch(/looks like an API key/);
    }
    expect((await asAdmin('PUT', `/api/v1/admin/environments/${pasted}/secrets/X`, { value: 'v' })).status).toBe(400);
    // The same from the host: usage errors (2), nothing written.
    for (const args of [
      ['apikey', 'create', '--name', pasted, '--environment', 'production', '--key-pattern', '*'],
      ['apikey', 'create', '--name', 'x', '--environment', pasted, '--key-pattern', '*'],
      ['apikey', 'create', '--name', 'x', '--environment', 'production', '--key-pattern', pasted],
      ['secret', 'set', pasted, 'X'],
    ]) {
      const result = await cli([...args, '--store', store.dir], { env, input: 'v' });
      expect({ args: args.length, exitCode: result.exitCode }).toEqual({ args: args.length, exitCode: 2 });
      expect(result.stderr.toLowerCase()).not.toContain(pasted);
    }
    const shown = [
      (await call(`${server.url}/healthz`)).text,
      (await asAdmin('GET', '/api/v1/auth/keys')).text,
      (await asAdmin('GET', '/api/v1/admin/environments')).text,
      (await asAdmin('GET', '/api/v1/admin/status')).text,
      await cliOk(['apikey', 'list', '--store', store.dir], { env }),
      await cliOk(['status', '--store', store.dir], { env }),
    ];
    for (const text of shown) expect(text).not.toContain(pasted);
  });

  it('answers 405 with Allow, 415, 413 and 401 like the read API; 401s count toward the 429 limit', async () => {
    const wrong = await asAdmin('PATCH', '/api/v1/auth/keys');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, HEAD, POST');
    expect(wrong.body).toEqual({ error: { code: 'RWS_METHOD_NOT_ALLOWED', message: 'use GET, HEAD, POST' } });
    expect((await asAdmin('POST', '/api/v1/vault/tokens')).headers.get('allow')).toBe('GET, HEAD');
    expect((await asAdmin('GET', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAAAAAAAA')).headers.get('allow')).toBe('DELETE');
    expect((await asAdmin('GET', '/api/v1/admin/environments/production/secrets/X')).headers.get('allow')).toBe('PUT, DELETE');
    expect((await asAdmin('DELETE', '/api/v1/vault/tokens/generate')).headers.get('allow')).toBe('POST');
    const form = await call(`${server.url}/api/v1/auth/keys`, { method: 'POST', auth: admin.key, body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect([form.status, form.body.error.code]).toEqual([415, 'RWS_UNSUPPORTED_MEDIA_TYPE']);
    const big = await call(`${server.url}/api/v1/admin/environments/production/secrets/BIG`, { method: 'PUT', auth: admin.key, json: { value: 'x'.repeat(70 * 1024) } });
    expect([big.status, big.body.error.code]).toEqual([413, 'RWS_BODY_TOO_LARGE']);
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const chunked = await rawRequest(`${server.url}/api/v1/auth/keys`, { method: 'POST', headers: { authorization: `Bearer ${admin.key}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks: [chunk, chunk, chunk, chunk, chunk] });
    expect(chunked.status).toBe(413);

    const attacker = fromAddress(43);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await as(`rws_sk_${i.toString(16).padStart(32, '0')}`, 'GET', '/api/v1/auth/keys', undefined, attacker)).status);
    expect(statuses.slice(0, 21)).toEqual(Array(21).fill(401));
    expect(statuses[21]).toBe(429);
    // Others' failures from the same address never lock a valid key out.
    expect((await as(admin.key, 'GET', '/api/v1/audit', undefined, attacker)).status).toBe(200);
    await attacker.close();
  });

  it('answers HEAD like GET on every admin route that has GET: same status and headers, no body, the same audit row', async () => {
    const routes: Array<[string, string]> = [
      ['/api/v1/auth/keys', 'apikey.list'],
      [`/api/v1/auth/keys/${admin.id}`, 'apikey.list'],
      ['/api/v1/vault/tokens', 'token.list'],
      ['/api/v1/audit', 'audit.read'],
      ['/api/v1/audit/chart', 'audit.read'],
      ['/api/v1/admin/status', 'status.read'],
      ['/api/v1/admin/environments', 'environment.list'],
      ['/api/v1/admin/environments/production/secrets', 'environment.list'],
      ['/metrics', 'metrics.read'],
    ];
    // The 429 of the test before is folded into a row written once its minute is over, whenever
    // that falls: it may land between a request here and the read of its row.
    const newest = () => auditRowsSync(store.dir, env).filter((row) => row.event !== 'auth.rate_limited').at(-1);
    for (const [route, event] of routes) {
      const get = await asAdmin('GET', route);
      const head = await asAdmin('HEAD', route);
      expect({ route, status: head.status, type: head.headers.get('content-type'), text: head.text }).toEqual({ route, status: get.status, type: get.headers.get('content-type'), text: '' });
      expect(get.status).toBe(200);
      expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
      expect(head.headers.get('cache-control')).toBe('no-store');
      expect({ route, row: newest() }).toMatchObject({ route, row: { event, outcome: 'success', status: 200, api_key_id: admin.id } });
    }
    // Refused like GET too, and on record as such.
    const refused = await as(reader.key, 'HEAD', '/api/v1/auth/keys');
    expect([refused.status, refused.text]).toEqual([403, '']);
    expect(newest()).toMatchObject({ event: 'apikey.list', outcome: 'failure', status: 403, error_code: 'RWS_FORBIDDEN', api_key_id: reader.id });
    // A path without GET still refuses HEAD: a JSON 405 with Allow.
    const noGet = await asAdmin('HEAD', '/api/v1/vault/tokens/AAAAAAAAAAAAAAAAAAAAAA');
    expect([noGet.status, noGet.headers.get('allow'), noGet.headers.get('content-type')]).toEqual([405, 'DELETE', 'application/json; charset=utf-8']);
  });

  it('never answers or records a value, an API key after creation, a token, or a hash of one', async () => {
    const trail = await asAdmin('GET', '/api/v1/audit?limit=1000');
    const text = [...answers, trail.text, await cliOk(['audit', '--json', '--limit', '10000', '--store', store.dir], { env })].join('\n');
    for (const value of values) expect(text).not.toContain(value);
    for (const credential of credentials) {
      // Created keys appear once, in their 201; nothing else may hold their secret part.
      const secretPart = credential.startsWith('rws_sk_') ? credential.slice(7) : (credential.split('.')[2] as string);
      expect(answers.filter((answer) => answer.includes(secretPart)).length).toBeLessThanOrEqual(1);
      expect(trail.text).not.toContain(secretPart);
    }
    expect(server.stderr()).not.toMatch(/rws_sk_|value-admin/);
    // Nor the stored HMAC of a key, nor a plain digest of any value, key or token.
    const pepper = await readFile(path.join(store.dir, 'api-key-pepper'));
    for (const credential of credentials) {
      expect(text).not.toContain(createHmac('sha256', pepper).update(credential).digest('hex'));
      expect(text).not.toContain(createHash('sha256').update(credential).digest('hex'));
    }
    for (const value of values) expect(text).not.toContain(createHash('sha256').update(value).digest('hex'));
  });
});
