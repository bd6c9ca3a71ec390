// The HTTP API end to end: the built bin serving a store made by its own commands, over HTTP.
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { craft, GOOD_HEADER, goodClaims } from '../helpers/jwt.js';
import { auditRowsSync, call, cliOk, rawRequest, generate, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';
import { SCHEMA_VERSION } from '../../../src/server/state/sql/schema.js';

const SECRETS = {
  production: { SERVICE_B_KEY: 'b-key-value-7f3a', SERVICE_B_URL: 'https://b.internal', SERVICE_A_KEY: 'a-key-value-91c2', DB_PASSWORD: 'hunter2-prod' },
  staging: { SERVICE_B_KEY: 'b-staging-value' },
  tampered: { A_KEY: 'tamper-a-value', B_KEY: 'tamper-b-value' },
};
const ALL_VALUES = Object.values(SECRETS).flatMap((values) => Object.values(values));

let store: TestStore;
let server: RunningServer;
let apiKey: string; // production + nowhere, SERVICE_B_*
let wideKey: string; // production, staging, tampered: *
let jwtSecret: string;
const tokensSeen: string[] = [];
const keysSeen: string[] = [];
// 401-heavy tests come from their own loopback addresses so the per-address limit never bites.
const fromAddress = (n: number) => new Agent({ localAddress: `127.0.0.${n}` });

beforeAll(async () => {
  store = await makeStore(SECRETS);
  apiKey = (await makeApiKey(store, ['production', 'nowhere'], ['SERVICE_B_*'], ['--max-ttl', '10'])).key;
  wideKey = (await makeApiKey(store, ['production', 'staging', 'tampered'], ['*'])).key;
  keysSeen.push(apiKey, wideKey);
  jwtSecret = await readFile(path.join(store.dir, 'jwt-secret'), 'utf8');
  server = await startServer(store);
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  await store?.cleanup();
});

const vault = (suffix: string) => `${server.url}/api/v1/vault/${suffix}`;
async function tokenFor(request: Record<string, unknown>, key = apiKey): Promise<string> {
  const value = await token(server, key, request);
  tokensSeen.push(value);
  return value;
}

describe('token generation', () => {
  it('issues a scoped token with the documented shape', async () => {
    const before = Date.now();
    const reply = await generate(server, apiKey, { subject: 'ci-job', environment: 'production', key_pattern: 'SERVICE_B_*', usage_limit: 5 });
    expect(reply.status).toBe(201);
    expect(Object.keys(reply.body).sort()).toEqual(['expires_at', 'jti', 'scope', 'token', 'token_type', 'usage_limit']);
    expect(reply.body).toMatchObject({ token_type: 'Bearer', scope: { environment: 'production', key_pattern: 'SERVICE_B_*', permissions: ['read'] }, usage_limit: 5 });
    const lifetime = Date.parse(reply.body.expires_at) - before;
    expect(lifetime).toBeGreaterThan(4 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(5 * 60_000 + 1000);
    const [header, payload] = (reply.body.token as string).split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
    expect(header).toEqual({ alg: 'HS256', typ: 'rws-access+jwt' });
    expect(payload.jti).toBe(reply.body.jti);
    tokensSeen.push(reply.body.token);
  });

  it('takes an optional field sent as null as absent, as Go and Python encoders write an unset one; a required one stays refused', async () => {
    const reply = await generate(server, apiKey, { subject: 'nulls', environment: 'production', key_pattern: 'SERVICE_B_*', ttl_minutes: null, usage_limit: null });
    expect([reply.status, reply.body.usage_limit]).toEqual([201, null]);
    tokensSeen.push(reply.body.token);
    const lifetime = Date.parse(reply.body.expires_at) - Date.now();
    expect(lifetime).toBeGreaterThan(4 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(5 * 60_000 + 1000);
    const batch = await call(vault('secrets/batch'), { auth: reply.body.token, json: { environment: 'production', keys: null, pattern: null } });
    expect([batch.status, Object.keys(batch.body.secrets).sort()]).toEqual([200, ['SERVICE_B_KEY', 'SERVICE_B_URL']]);
    for (const body of [{ subject: null, environment: 'production', key_pattern: 'SERVICE_B_*' }, { subject: 's', environment: null, key_pattern: 'SERVICE_B_*' }, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_*', unknown: null }]) {
      expect((await generate(server, apiKey, body)).body.error.code).toBe('RWS_BAD_REQUEST');
    }
    expect((await call(vault('secrets/batch'), { auth: reply.body.token, json: { environment: null } })).body.error.code).toBe('RWS_BAD_REQUEST');
  });

  it('caps the lifetime by the key and by the server', async () => {
    const capped = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY', ttl_minutes: 30 });
    expect(Date.parse(capped.body.expires_at) - Date.now()).toBeLessThanOrEqual(10 * 60_000 + 1000);
    expect(Date.parse(capped.body.expires_at) - Date.now()).toBeGreaterThan(9 * 60_000);
    const server60 = await generate(server, wideKey, { subject: 's', environment: 'production', key_pattern: '*', ttl_minutes: 600 });
    expect(Date.parse(server60.body.expires_at) - Date.now()).toBeLessThanOrEqual(60 * 60_000 + 1000);
    expect(Date.parse(server60.body.expires_at) - Date.now()).toBeGreaterThan(59 * 60_000);
    tokensSeen.push(capped.body.token, server60.body.token);
  });

  it.each([
    ['SERVICE_*'],
    ['*'],
    ['SERVICE_B?*'],
    ['SERVICE_?_KEY'],
    ['SERVICE_B*'],
    ['*SERVICE_B_KEY'],
    ['?ERVICE_B_KEY'],
    ['SERVICE_B'],
  ])('refuses the pattern %s outside the grant SERVICE_B_* with 403', async (pattern) => {
    const reply = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: pattern });
    expect(reply.status).toBe(403);
    expect(reply.body.error.code).toBe('RWS_FORBIDDEN');
    expect(reply.body.token).toBeUndefined();
  });

  it.each([['SERVICE_B_*'], ['SERVICE_B_KEY'], ['SERVICE_B_?*'], ['SERVICE_B_*_URL'], ['SERVICE_B_??Y']])('allows %s within SERVICE_B_*', async (pattern) => {
    expect((await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: pattern })).status).toBe(201);
  });

  it('refuses an environment outside the grant, and patterns outside the glob grammar', async () => {
    expect((await generate(server, apiKey, { subject: 's', environment: 'staging', key_pattern: 'SERVICE_B_KEY' })).status).toBe(403);
    for (const pattern of ['SERVICE_B_.*', 'SERVICE_B_[A-Z]*', '(SERVICE_B_KEY)', 'SERVICE_B_KEY|DB_PASSWORD', '']) {
      const reply = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: pattern });
      expect(reply.status).toBe(400);
      expect(reply.body.error.code).toBe('RWS_BAD_REQUEST');
    }
  });

  it.each([
    ['subject is a number', { subject: 1 }],
    ['subject is empty', { subject: '' }],
    ['subject has a newline', { subject: 'a\nb' }],
    ['ttl_minutes is fractional', { ttl_minutes: 1.5 }],
    ['ttl_minutes is zero', { ttl_minutes: 0 }],
    ['usage_limit is a string', { usage_limit: '10' }],
    ['usage_limit is zero', { usage_limit: 0 }],
    ['usage_limit is negative', { usage_limit: -3 }],
    ['usage_limit is huge', { usage_limit: 1e20 }],
    ['environment has a slash', { environment: '../production' }],
    ['environment is a list', { environment: ['production'] }],
    ['an unknown field', { admin: true }],
  ])('answers 400 when %s', async (_what, change) => {
    const reply = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY', ...change });
    expect(reply.status).toBe(400);
    expect(reply.body.error.code).toBe('RWS_BAD_REQUEST');
  });

  it('refuses prototype-pollution keys and stays healthy', async () => {
    for (const body of [
      '{"__proto__":{"admin":true},"subject":"s","environment":"production","key_pattern":"SERVICE_B_KEY"}',
      '{"constructor":{"prototype":{"admin":true}},"subject":"s","environment":"production","key_pattern":"SERVICE_B_KEY"}',
    ]) {
      const reply = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json' } });
      expect(reply.status).toBe(400);
    }
    const ok = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    expect(ok.status).toBe(201);
    expect(ok.body.admin).toBeUndefined();
  });

  it('refuses a string escaped into a lone surrogate (400), so the audit chain still verifies', async () => {
    for (const subject of ['\\ud800', 'ci-\\udfff-job', '\\ude00\\ud83d']) {
      const body = `{"subject":"${subject}","environment":"production","key_pattern":"SERVICE_B_KEY"}`;
      const reply = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json' } });
      expect(reply.status).toBe(400);
      expect(reply.body.error).toEqual({ code: 'RWS_BAD_REQUEST', message: 'the body holds a string that is not valid Unicode (a lone surrogate escape)' });
    }
    // An escaped pair is a character like any other.
    const pair = await call(vault('tokens/generate'), { auth: apiKey, body: '{"subject":"ci-\\ud83d\\ude00","environment":"production","key_pattern":"SERVICE_B_KEY"}', headers: { 'content-type': 'application/json' } });
    expect(pair.status).toBe(201);
    expect(await cliOk(['audit', 'verify', '--store', store.dir])).toMatch(/verified/);
  });

  it('refuses a body nested deeper than 64 levels as such, not as invalid JSON, and serves one 64 deep', async () => {
    const nested = (depth: number) => `{"subject":"s","environment":"production","key_pattern":"SERVICE_B_KEY","pad":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
    // 20,000 levels is valid JSON within 64 KiB; so is a bracket inside a string, which is no level.
    for (const body of [nested(20_000), nested(65), `{"subject":"${'['.repeat(100)}",${nested(65).slice(1)}`]) {
      const reply = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json' } });
      expect(reply.status).toBe(400);
      expect(reply.body.error).toEqual({ code: 'RWS_BAD_REQUEST', message: 'the body nests deeper than 64 levels of objects and arrays' });
    }
    // 64 levels pass the bound: refused only for the unknown field, as any body with one.
    const reply = await call(vault('tokens/generate'), { auth: apiKey, body: nested(64), headers: { 'content-type': 'application/json' } });
    expect(reply.body.error.message).toMatch(/^unexpected field "pad"/);
    const inString = await call(vault('tokens/generate'), { auth: apiKey, body: `{"subject":"${'['.repeat(100)}","environment":"production","key_pattern":"SERVICE_B_KEY"}`, headers: { 'content-type': 'application/json' } });
    expect(inString.status).toBe(201);
  });

  it('refuses bad API keys with 401 and no detail', async () => {
    const dispatcher = fromAddress(11);
    // (A trailing space cannot be tested here: HTTP parsers strip it from header values.)
    for (const bad of ['rws_sk_' + '0'.repeat(32), apiKey.toUpperCase(), `${apiKey}0`, apiKey.slice(0, -1), 'garbage']) {
      const reply = await call(vault('tokens/generate'), { auth: bad, json: { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, dispatcher });
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual({ error: { code: 'RWS_AUTH_FAILED', message: expect.any(String) } });
    }
    const none = await call(vault('tokens/generate'), { json: { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, dispatcher });
    expect(none.status).toBe(401);
    const tokenAsKey = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    expect((await call(vault('tokens/generate'), { auth: tokenAsKey, json: {}, dispatcher })).status).toBe(401);
  });
});

describe('who the API key is (GET /api/v1/auth/self)', () => {
  const self = () => `${server.url}/api/v1/auth/self`;

  it('answers id, name, grants, expiry and admin, never the key or its hash', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const fresh = await makeApiKey(store, ['production', 'staging'], ['SERVICE_B_*', 'DB_*'], ['--expires-at', expiresAt]);
    keysSeen.push(fresh.key);
    const reply = await call(self(), { auth: fresh.key });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ id: fresh.id, name: 'test', environments: ['production', 'staging'], key_patterns: ['SERVICE_B_*', 'DB_*'], expires_at: expiresAt, admin: false });
    expect(reply.headers.get('cache-control')).toBe('no-store');
    expect(reply.text).not.toContain(fresh.key.slice(7, 15));
    expect((await call(self(), { auth: apiKey })).body).toMatchObject({ expires_at: null, admin: false, key_patterns: ['SERVICE_B_*'] });
  });

  it('refuses what token generate refuses, with 401, and only GET', async () => {
    const dispatcher = fromAddress(16);
    const tokenAsKey = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const revoked = await makeApiKey(store, ['production'], ['*']);
    keysSeen.push(revoked.key);
    await cliOk(['apikey', 'revoke', revoked.id, '--store', store.dir]);
    // Revocation reaches a running server within a second (see below).
    await until(async () => (await call(self(), { auth: revoked.key, dispatcher })).status === 401);
    for (const bad of ['rws_sk_' + '0'.repeat(32), apiKey.toUpperCase(), `${apiKey}0`, tokenAsKey, revoked.key]) {
      const reply = await call(self(), { auth: bad, dispatcher });
      expect(reply.status).toBe(401);
      expect(reply.body).toEqual({ error: { code: 'RWS_AUTH_FAILED', message: expect.any(String) } });
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    }
    // RFC 6750 §3: a refused credential is invalid_token; a request that sent none gets the bare
    // challenge, without an error code (so does one in another scheme).
    const none = await call(self(), { dispatcher });
    expect([none.status, none.headers.get('www-authenticate')]).toEqual([401, 'Bearer']);
    const basic = await call(self(), { headers: { authorization: 'Basic dTpw' }, dispatcher });
    expect([basic.status, basic.headers.get('www-authenticate')]).toEqual([401, 'Bearer']);
    const post = await call(self(), { auth: apiKey, json: {}, dispatcher });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  it('is rate limited with the other credentialed routes: the 21st 401 from an address gets 429, but a good key still works', async () => {
    const attacker = fromAddress(17);
    const statuses: number[] = [];
    for (let i = 0; i < 22; i++) statuses.push((await call(self(), { auth: `rws_sk_${i.toString(16).padStart(32, 'a')}`, dispatcher: attacker })).status);
    expect(statuses.slice(0, 20).every((status) => status === 401)).toBe(true);
    expect(statuses[21]).toBe(429);
    // A valid credential is never locked out by others' failures from the same address.
    expect((await call(self(), { auth: apiKey, dispatcher: attacker })).status).toBe(200);
    expect((await call(self(), { auth: apiKey })).status).toBe(200);
  });

  it('leaves an auth.self row with the key id, and auth.failure rows for refused keys', async () => {
    const rows = (await cliOk(['audit', '--json', '--limit', '10000', '--store', store.dir])).trim().split('\n').map((line) => JSON.parse(line));
    const success = rows.find((row) => row.event === 'auth.self' && row.outcome === 'success' && row.client === '127.0.0.1');
    expect(success).toMatchObject({ status: 200, api_key_id: expect.stringMatching(/^ak_/), jti: null, environment: null, keys: null, client: '127.0.0.1' });
    expect(rows.some((row) => row.event === 'auth.failure' && row.client === '127.0.0.16')).toBe(true);
    expect((await cliOk(['audit', '--event', 'auth.self', '--json', '--store', store.dir])).trim().split('\n').length).toBeGreaterThan(0);
  });
});

describe('reading secrets', () => {
  it('reads one secret in scope, lists names and batches', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    expect(await call(vault('production/SERVICE_B_KEY'), { auth: t })).toMatchObject({ status: 200, body: { environment: 'production', key: 'SERVICE_B_KEY', value: 'b-key-value-7f3a' } });
    const list = await call(vault('production'), { auth: t });
    expect(list.body).toEqual({ environment: 'production', keys: ['SERVICE_B_KEY', 'SERVICE_B_URL'] });
    expect(list.text).not.toContain('b-key-value');
    expect((await call(vault('production?pattern=SERVICE_B_U*'), { auth: t })).body.keys).toEqual(['SERVICE_B_URL']);
    const batch = await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: ['SERVICE_B_KEY', 'SERVICE_B_URL'] } });
    // No usage limit on this token: its answer may be cached (test/server/integration/fallback-api.test.ts).
    const fallback = { allowed: true, not_after: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/) };
    expect(batch.body).toEqual({ environment: 'production', secrets: { SERVICE_B_KEY: 'b-key-value-7f3a', SERVICE_B_URL: 'https://b.internal' }, fallback });
    const byPattern = await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', pattern: 'SERVICE_B_K*' } });
    expect(byPattern.body).toEqual({ environment: 'production', secrets: { SERVICE_B_KEY: 'b-key-value-7f3a' }, fallback });
    const all = await call(vault('secrets/batch'), { auth: t, json: { environment: 'production' } });
    expect(Object.keys(all.body.secrets)).toEqual(['SERVICE_B_KEY', 'SERVICE_B_URL']);
  });

  it('refuses everything outside the token scope with 403, before saying whether it exists', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    for (const [url, options] of [
      [vault('production/SERVICE_A_KEY'), {}],
      [vault('production/DB_PASSWORD'), {}],
      [vault('production/NO_SUCH_NAME'), {}],
      [vault('staging/SERVICE_B_KEY'), {}],
      [vault('production?pattern=*'), {}],
      [vault('production?pattern=SERVICE_*'), {}],
      [vault('staging'), {}],
      [vault('secrets/batch'), { json: { environment: 'production', keys: ['SERVICE_B_KEY', 'SERVICE_A_KEY'] } }],
      [vault('secrets/batch'), { json: { environment: 'production', pattern: 'SERVICE_?_KEY' } }],
      [vault('secrets/batch'), { json: { environment: 'staging' } }],
    ] as const) {
      const reply = await call(url, { auth: t, ...options });
      expect({ url, status: reply.status }).toEqual({ url, status: 403 });
      // What the token does cover, which its holder can read in it: the fix is another request or another token.
      expect({ url, message: reply.body.error.message }).toEqual({ url, message: expect.stringMatching(/; the token's scope is environment production, key pattern SERVICE_B_\*$/) });
      for (const value of ALL_VALUES) expect(reply.text).not.toContain(value);
    }
  });

  it('answers 404 only inside the scope, and 400 for malformed names', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    expect((await call(vault('production/SERVICE_B_NOPE'), { auth: t })).body.error.code).toBe('RWS_NOT_FOUND');
    expect((await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: ['SERVICE_B_KEY', 'SERVICE_B_NOPE'] } })).status).toBe(404);
    const nowhere = await tokenFor({ environment: 'nowhere', key_pattern: 'SERVICE_B_KEY' });
    expect((await call(vault('nowhere/SERVICE_B_KEY'), { auth: nowhere })).status).toBe(404);
    expect((await call(vault('production/SERVICE-B'), { auth: t })).body.error.code).toBe('RWS_NAME_INVALID');
    expect((await call(vault('production/SERVICE_B_%4BEY'), { auth: t })).status).toBe(400);
    expect((await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: ['SERVICE_B_KEY'], pattern: '*' } })).status).toBe(400);
    expect((await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: 'SERVICE_B_KEY' } })).status).toBe(400);
    expect((await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: [{}] } })).status).toBe(400);
    expect((await call(vault('production?pattern=a&pattern=b'), { auth: t })).status).toBe(400);
  });

  it('counts each successful read, list or batch as one use, and nothing else', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*', usage_limit: 3 });
    expect((await call(vault('production/SERVICE_A_KEY'), { auth: t })).status).toBe(403);
    expect((await call(vault('production/SERVICE_B_NOPE'), { auth: t })).status).toBe(404);
    expect((await call(vault('production/SERVICE_B_KEY'), { auth: t })).status).toBe(200);
    expect((await call(vault('production'), { auth: t })).status).toBe(200);
    expect((await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: ['SERVICE_B_KEY', 'SERVICE_B_URL'] } })).status).toBe(200);
    const spent = await call(vault('production/SERVICE_B_KEY'), { auth: t, dispatcher: fromAddress(12) });
    expect(spent.status).toBe(401);
    expect(spent.body.error.code).toBe('RWS_TOKEN_EXHAUSTED');
  });

  it('revokes a token by itself (204, idempotent); it then gets 401', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    expect((await call(vault('tokens/revoke'), { auth: t, method: 'POST' })).status).toBe(204);
    const after = await call(vault('production/SERVICE_B_KEY'), { auth: t, dispatcher: fromAddress(13) });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('RWS_TOKEN_REVOKED');
    expect((await call(vault('tokens/revoke'), { auth: t, method: 'POST' })).status).toBe(204);
  });

  it('a refused token gets its 401 before any 400, 403 or 404, and every row names the key that issued it', async () => {
    const revoked = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    const spent = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*', usage_limit: 1 });
    const good = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    const jtiOf = (t: string): string => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti;
    expect((await call(vault('tokens/revoke'), { auth: revoked, method: 'POST' })).status).toBe(204);
    expect((await call(vault('production/SERVICE_B_KEY'), { auth: spent })).status).toBe(200);
    const dispatcher = fromAddress(18);
    const paths = ['production/SERVICE_A_KEY', 'production/SERVICE_B_NOPE', 'production/bad-name', 'staging/SERVICE_B_KEY', 'production?pattern=SERVICE_A_*', 'production?x=1', 'staging', 'production/SERVICE_B_KEY', 'production'];
    for (const [t, code] of [[revoked, 'RWS_TOKEN_REVOKED'], [spent, 'RWS_TOKEN_EXHAUSTED']] as const) {
      for (const target of paths) {
        const reply = await call(vault(target), { auth: t, dispatcher });
        expect([target, reply.status, reply.body.error?.code]).toEqual([target, 401, code]);
        expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
        expect(reply.text).not.toContain('b-key-value');
      }
    }
    // The good token gets each refusal for what it is, and its reads.
    expect((await call(vault('production/SERVICE_A_KEY'), { auth: good })).status).toBe(403);
    expect((await call(vault('production/SERVICE_B_NOPE'), { auth: good })).status).toBe(404);
    expect((await call(vault('production/bad-name'), { auth: good })).status).toBe(400);
    expect((await call(vault('production/SERVICE_B_KEY'), { auth: good })).status).toBe(200);
    const keyId = (await call(`${server.url}/api/v1/auth/self`, { auth: apiKey })).body.id;
    await until(() => auditRowsSync(store.dir).some((row) => row.jti === jtiOf(good) && row.status === 200));
    const rows = auditRowsSync(store.dir).filter((row) => [revoked, spent, good].map(jtiOf).includes(row.jti as string));
    // Three mints, a revocation, the spending read, the refusals and the good token's four.
    expect(rows.length).toBe(3 + 1 + 1 + 2 * paths.length + 4);
    expect(rows.every((row) => row.api_key_id === keyId)).toBe(true);
    // A refused list names no secret: the token saw none (a refused read names the one it asked for).
    const refused = rows.filter((row) => row.status === 401);
    expect(refused).toHaveLength(2 * paths.length);
    expect(refused.every((row) => row.keys === null || (Array.isArray(row.keys) && row.keys.length === 1))).toBe(true);
  });
});

describe('bad tokens over HTTP', () => {
  const dispatcher = fromAddress(14);
  const now = Date.now();
  const claims = () => goodClaims(now, { scope: { environment: 'production', key_pattern: 'SERVICE_B_*', permissions: ['read'] } });
  const cases: Array<[string, () => string]> = [
    ['control: a well-formed crafted token passes every check but the issue record', () => craft(GOOD_HEADER, claims(), { secret: jwtSecret })],
    ['alg none', () => craft({ alg: 'none', typ: GOOD_HEADER.typ }, claims(), { hash: 'none' })],
    ['HS384', () => craft({ alg: 'HS384', typ: GOOD_HEADER.typ }, claims(), { secret: jwtSecret, hash: 'sha384' })],
    ['HS512', () => craft({ alg: 'HS512', typ: GOOD_HEADER.typ }, claims(), { secret: jwtSecret, hash: 'sha512' })],
    ['a bad signature', () => craft(GOOD_HEADER, claims(), { secret: `${jwtSecret}x` })],
    ['crit', () => craft({ ...GOOD_HEADER, crit: ['exp'] }, claims(), { secret: jwtSecret })],
    ['kid', () => craft({ ...GOOD_HEADER, kid: 'jwt-secret' }, claims(), { secret: jwtSecret })],
    ['jku', () => craft({ ...GOOD_HEADER, jku: 'http://127.0.0.1/' }, claims(), { secret: jwtSecret })],
    ['expired', () => craft(GOOD_HEADER, goodClaims(now - 3_600_000, { exp: Math.floor(now / 1000) - 60 }), { secret: jwtSecret })],
    ['not yet valid', () => craft(GOOD_HEADER, goodClaims(now + 600_000), { secret: jwtSecret })],
    ['wrong audience', () => craft(GOOD_HEADER, { ...claims(), aud: 'x' }, { secret: jwtSecret })],
    ['lifetime over 60 minutes', () => craft(GOOD_HEADER, { ...claims(), exp: (claims().iat as number) + 3601 }, { secret: jwtSecret })],
    ['an extra scope key', () => craft(GOOD_HEADER, { ...claims(), scope: { ...(claims().scope as object), admin: true } }, { secret: jwtSecret })],
    ['over 4 KiB', () => craft(GOOD_HEADER, { ...claims(), pad: 'x'.repeat(4096) }, { secret: jwtSecret })],
  ];
  it.each(cases)('%s', async (name, make) => {
    const reply = await call(vault('production/SERVICE_B_KEY'), { auth: make(), dispatcher });
    expect(reply.status).toBe(401);
    // Fail closed: a correctly signed token this vault never minted (or whose record was lost)
    // is refused; every other case must be refused before the state is even asked.
    if (name.startsWith('control')) {
      expect(reply.body.error).toEqual({ code: 'RWS_AUTH_FAILED', message: 'this vault holds no record of the token; mint a new one with POST /api/v1/vault/tokens/generate' });
      return;
    }
    expect(reply.body.error.message).not.toContain('no record');
    expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(reply.text).not.toMatch(/at .*\.js|stack|jose/i);
    expect(reply.text).not.toContain('b-key-value');
  });

  it('refuses to revoke a signed token it holds no record of, as every route refuses it', async () => {
    const reply = await call(vault('tokens/revoke'), { auth: craft(GOOD_HEADER, claims(), { secret: jwtSecret }), method: 'POST', dispatcher: fromAddress(19) });
    expect([reply.status, reply.body.error]).toEqual([401, { code: 'RWS_AUTH_FAILED', message: 'this vault holds no record of the token; mint a new one with POST /api/v1/vault/tokens/generate' }]);
    expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
  });

  it('refuses credentials that are not `Bearer <token>`, and takes any number of spaces after Bearer (RFC 6750 1*SP)', async () => {
    const good = craft(GOOD_HEADER, claims(), { secret: jwtSecret });
    for (const header of [`Bearer ${good} x`, `Basic ${good}`, good, `Bearer ${good.replace('.', '. ')}`, `Bearer\t${good}`, `Bearer`, `Bearer${good}`]) {
      expect((await call(vault('production/SERVICE_B_KEY'), { headers: { authorization: header }, dispatcher })).status).toBe(401);
    }
    const minted = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
    for (const header of [`Bearer  ${minted}`, `bearer    ${minted}`]) {
      expect((await call(vault('production/SERVICE_B_KEY'), { headers: { authorization: header }, dispatcher })).status).toBe(200);
    }
  });

  it('says which credential a route takes when given the other, and what to do next, never quoting either', async () => {
    const dispatcher = fromAddress(26);
    const minted = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
    const replies = {
      keyOnRead: await call(vault('production/SERVICE_B_KEY'), { auth: apiKey, dispatcher }),
      keyOnBatch: await call(vault('secrets/batch'), { auth: apiKey, json: { environment: 'production' }, dispatcher }),
      tokenOnGenerate: await generate(server, minted, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_*' }, dispatcher),
      tokenOnSelf: await call(`${server.url}/api/v1/auth/self`, { auth: minted, dispatcher }),
      unknownKey: await call(`${server.url}/api/v1/auth/self`, { auth: `rws_sk_${'0'.repeat(32)}`, dispatcher }),
      expiredShape: await call(vault('production/SERVICE_B_KEY'), { auth: craft(GOOD_HEADER, claims(), { secret: 'another-secret-of-at-least-32-bytes!' }), dispatcher }),
    };
    const said = Object.fromEntries(Object.entries(replies).map(([what, reply]) => [what, [reply.status, reply.body.error.code, reply.body.error.message]]));
    expect(said).toEqual({
      keyOnRead: [401, 'RWS_AUTH_FAILED', 'this route takes a token, not an API key: mint one with POST /api/v1/vault/tokens/generate'],
      keyOnBatch: [401, 'RWS_AUTH_FAILED', 'this route takes a token, not an API key: mint one with POST /api/v1/vault/tokens/generate'],
      tokenOnGenerate: [401, 'RWS_AUTH_FAILED', 'this route takes an API key (rws_sk_ and 32 hex digits), not a token'],
      tokenOnSelf: [401, 'RWS_AUTH_FAILED', 'this route takes an API key (rws_sk_ and 32 hex digits), not a token'],
      unknownKey: [401, 'RWS_AUTH_FAILED', 'invalid API key: unknown, revoked or expired; use a live key (secrets-server apikey list shows them)'],
      expiredShape: [401, 'RWS_AUTH_FAILED', 'invalid token; mint a new one with POST /api/v1/vault/tokens/generate'],
    });
    for (const reply of Object.values(replies)) {
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      expect(reply.text).not.toContain(apiKey);
      expect(reply.text).not.toContain(minted.split('.')[2]);
    }
  });

  it('refuses two Authorization headers with 401, whichever of them is good: it never picks one', async () => {
    const { request } = await import('node:http');
    /** node:http writes an array header as one line per value, as a client that adds its own default would. */
    const twice = (target: string, method: string, values: string[]) =>
      new Promise<{ status: number; body: any }>((resolve, reject) => {
        const req = request(target, { method, headers: { authorization: values, 'content-type': 'application/json' }, localAddress: '127.0.0.23' }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end(method === 'POST' ? JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }) : undefined);
      });
    const minted = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
    for (const values of [[`Bearer ${minted}`, 'Bearer junk'], ['Bearer junk', `Bearer ${minted}`], [`Bearer ${minted}`, `Bearer ${minted}`]]) {
      const reply = await twice(vault('production/SERVICE_B_KEY'), 'GET', values);
      expect({ values: values.map((v) => v.slice(0, 12)), status: reply.status, code: reply.body.error?.code }).toEqual({ values: values.map((v) => v.slice(0, 12)), status: 401, code: 'RWS_AUTH_FAILED' });
    }
    const generated = await twice(vault('tokens/generate'), 'POST', [`Bearer ${apiKey}`, `Bearer rws_sk_${'0'.repeat(32)}`]);
    expect([generated.status, generated.body.error?.code]).toEqual([401, 'RWS_AUTH_FAILED']);
    expect((await call(vault('production/SERVICE_B_KEY'), { auth: minted })).status).toBe(200);
  });
});

describe('HTTP hygiene', () => {
  it('answers 404, 405 with Allow, 415 and 413 as JSON errors', async () => {
    expect((await call(`${server.url}/healthz`)).body).toMatchObject({ status: 'ok', state: { kind: 'sqlite', schema: SCHEMA_VERSION }, environments: { production: { digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) }, staging: { digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) } } });
    expect((await call(`${server.url}/nope`)).body.error.code).toBe('RWS_NOT_FOUND');
    const wrongMethod = await call(vault('tokens/generate'));
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    const deleted = await call(vault('production/SERVICE_B_KEY'), { method: 'DELETE' });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get('allow')).toBe('GET, HEAD');
    expect((await call(`${server.url}/healthz`, { method: 'POST', body: '' })).status).toBe(405);
    const text = await call(vault('tokens/generate'), { auth: apiKey, body: 'subject=s', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(text.status).toBe(415);
    expect(text.body.error.code).toBe('RWS_UNSUPPORTED_MEDIA_TYPE');
    const big = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY', pad: 'x'.repeat(70 * 1024) });
    const huge = await call(vault('tokens/generate'), { auth: apiKey, body: big, headers: { 'content-type': 'application/json' } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('RWS_BODY_TOO_LARGE');
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const batchToken = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const chunked = await rawRequest(vault('secrets/batch'), { method: 'POST', headers: { authorization: `Bearer ${batchToken}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks: [chunk, chunk, chunk, chunk, chunk] });
    expect(chunked).toEqual({ status: 413, body: { error: { code: 'RWS_BODY_TOO_LARGE', message: expect.any(String) } } });
  });

  it('refuses a query on a route that takes none (400), after the credential (401), rather than ignore it', async () => {
    const body = { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' };
    const minted = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
    const routes: Array<[string, string, string, unknown]> = [
      // Ignored, `?usage_limit=1` minted an unlimited token to a client that thought it asked for one use.
      ['tokens/generate?usage_limit=1', 'POST', apiKey, body],
      ['production/SERVICE_B_KEY?version=2', 'GET', minted, undefined],
      ['tokens/revoke?jti=x', 'POST', minted, undefined],
    ];
    for (const [path, method, auth, json] of routes) {
      const reply = await call(vault(path), { method, auth, json });
      expect({ path, status: reply.status, code: reply.body.error?.code }).toEqual({ path, status: 400, code: 'RWS_BAD_REQUEST' });
      const stranger = await call(vault(path), { method, auth: `rws_sk_${'0'.repeat(32)}`, json, dispatcher: fromAddress(24) });
      expect({ path, status: stranger.status }).toEqual({ path, status: 401 });
    }
    for (const path of ['/api/v1/auth/self?x=1', '/api/v1/fallback/uses?x=1']) {
      const used = { subject: 's', environment: 'production', keys: ['SERVICE_B_KEY'], used_at: new Date().toISOString() };
      const reply = await call(`${server.url}${path}`, { method: path.includes('self') ? 'GET' : 'POST', auth: apiKey, json: path.includes('self') ? undefined : used });
      expect({ path, status: reply.status, code: reply.body.error?.code }).toEqual({ path, status: 400, code: 'RWS_BAD_REQUEST' });
    }
    // A bare `?` is no query; the token was never charged or revoked by the refusals above.
    expect((await call(vault('production/SERVICE_B_KEY?'), { auth: minted })).status).toBe(200);
    expect((await call(vault('tokens/generate?'), { auth: apiKey, json: body })).status).toBe(201);
  });

  it('takes application/json with or without a UTF-8 charset, quoted or not (RFC 9110 §8.3.1), and nothing else', async () => {
    const body = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const send = async (type: string) => (await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': type } })).status;
    for (const type of ['application/json', 'Application/JSON', 'application/json;charset=utf-8', 'application/json; charset=UTF-8', 'application/json; charset="utf-8"', 'application/json; CHARSET="UTF-8"']) {
      expect({ type, status: await send(type) }).toEqual({ type, status: 201 });
    }
    for (const type of ['text/json', 'application/json; charset=latin1', 'application/json; charset="latin1"', 'application/json; charset="utf-8', 'application/json; charset=utf-8"', 'application/json; boundary=x', 'application/jsonx']) {
      expect({ type, status: await send(type) }).toEqual({ type, status: 415 });
    }
  });

  it('says what to send instead of a body it does not read, or of none', async () => {
    const body = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const send = async (headers: Record<string, string>, sent = body) =>
      (await rawRequest(vault('tokens/generate'), { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-length': String(Buffer.byteLength(sent)), ...headers }, chunks: [Buffer.from(sent)] })).body.error;
    expect(await send({ 'content-type': 'application/x-www-form-urlencoded' })).toEqual({
      code: 'RWS_UNSUPPORTED_MEDIA_TYPE',
      message: "a form body is not read (curl -d sends one): send the body as application/json (curl -H 'Content-Type: application/json')",
    });
    expect(await send({})).toEqual({ code: 'RWS_UNSUPPORTED_MEDIA_TYPE', message: 'the body has no Content-Type; send it as application/json' });
    expect(await send({ 'content-type': 'application/json; charset=latin1' })).toEqual({ code: 'RWS_UNSUPPORTED_MEDIA_TYPE', message: 'the body is read as UTF-8: send application/json with charset=utf-8 or no parameter' });
    expect(await send({ 'content-type': 'text/plain' })).toEqual({ code: 'RWS_UNSUPPORTED_MEDIA_TYPE', message: 'send the body as application/json' });
    expect(await send({ 'content-type': 'application/json' }, '')).toEqual({ code: 'RWS_BAD_REQUEST', message: 'the request has no body; send a JSON object' });
    expect(await send({}, '')).toEqual({ code: 'RWS_BAD_REQUEST', message: 'the request has no body; send a JSON object' });
  });

  it('refuses a body with a Content-Encoding (415, Accept-Encoding: identity) rather than read it as plain JSON', async () => {
    const body = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    const send = (coding: string, sent: Buffer) =>
      rawRequest(vault('tokens/generate'), { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', 'content-encoding': coding, 'content-length': String(sent.length) }, chunks: [sent] });
    for (const [coding, sent] of [['gzip', Buffer.from(body)], ['gzip', gzipSync(body)], ['br', Buffer.from(body)]] as const) {
      const reply = await send(coding, sent);
      expect({ coding, reply }).toEqual({ coding, reply: { status: 415, body: { error: { code: 'RWS_UNSUPPORTED_MEDIA_TYPE', message: 'a body with a Content-Encoding is not read: send it as plain JSON, without one' } } } });
    }
    const refused = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
    expect([refused.status, refused.headers.get('accept-encoding')]).toEqual([415, 'identity']);
    expect((await send('identity', Buffer.from(body))).status).toBe(201);
  });

  it('ignores a UTF-8 byte order mark before a JSON body, as RFC 8259 §8.1 allows', async () => {
    const body = `\uFEFF${JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' })}`;
    const reply = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json' } });
    expect(reply.status).toBe(201);
    tokensSeen.push(reply.body.token);
  });

  it('says that tokens and secrets are reserved when they are asked for as an environment', async () => {
    const minted = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    const listed = await call(vault('secrets'), { auth: minted });
    expect([listed.status, listed.body.error]).toEqual([400, { code: 'RWS_BAD_REQUEST', message: 'environment must be a name of letters, digits, _ and - (at most 64), other than tokens and secrets (reserved)' }]);
  });

  it('answers 400 to hostile bodies', async () => {
    for (const body of [
      // A field given twice: JSON.parse would keep the last, a proxy or a log may read the first.
      '{"subject":"s","environment":"staging","environment":"production","key_pattern":"SERVICE_B_KEY"}',
      '{"subject":"s","environment":"production","key_pattern":"SERVICE_B_KEY","\\u0073ubject":"t"}',
      '{', 'null', '[]', '"x"', '1', '{"subject":"s"}x', '\uFEFF{}', '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['.repeat(500)]) {
      const reply = await call(vault('tokens/generate'), { auth: apiKey, body, headers: { 'content-type': 'application/json' } });
      expect({ body: body.slice(0, 20), status: reply.status }).toEqual({ body: body.slice(0, 20), status: 400 });
    }
    const invalidUtf8 = await fetch(vault('tokens/generate'), { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: new Uint8Array([0x7b, 0xff, 0x7d]) });
    expect(invalidUtf8.status).toBe(400);
  });

  it('sends no-store and nosniff on every answer', async () => {
    const reply = await call(`${server.url}/nope`);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
  });
});

describe('admin changes on a running server', () => {
  it('a new API key works at once; a revoked one, and its tokens, stop within a second', async () => {
    const fresh = await makeApiKey(store, ['production'], ['DB_*']);
    keysSeen.push(fresh.key);
    const t = await tokenFor({ environment: 'production', key_pattern: 'DB_PASSWORD' }, fresh.key);
    expect((await call(vault('production/DB_PASSWORD'), { auth: t })).body.value).toBe('hunter2-prod');
    await cliOk(['apikey', 'revoke', fresh.id, '--store', store.dir]);
    const dispatcher = fromAddress(15);
    const waited = await until(async () => (await generate(server, fresh.key, { subject: 's', environment: 'production', key_pattern: 'DB_PASSWORD' }, dispatcher)).status === 401);
    expect(waited).toBeLessThan(1000);
    const reply = await call(vault('production/DB_PASSWORD'), { auth: t, dispatcher });
    expect(reply.status).toBe(401);
    expect(reply.body.error.code).toBe('RWS_TOKEN_REVOKED');
    const listed = await cliOk(['apikey', 'list', '--json', '--store', store.dir]);
    const row = listed.trim().split('\n').map((line) => JSON.parse(line)).find((entry) => entry.id === fresh.id);
    expect(row.revoked_at).not.toBeNull();
    expect(row.last_used_at).not.toBeNull();
    for (const key of keysSeen) expect(listed).not.toContain(key.slice(7));
  });

  it('a changed secrets file is re-read within a second', async () => {
    const t = await tokenFor({ environment: 'staging', key_pattern: '*' }, wideKey);
    expect((await call(vault('staging/SERVICE_B_KEY'), { auth: t })).body.value).toBe('b-staging-value');
    await cliOk(['secret', 'set', 'staging', 'SERVICE_B_KEY', '--store', store.dir], { input: 'b-staging-rotated\n' });
    const waited = await until(async () => (await call(vault('staging/SERVICE_B_KEY'), { auth: t })).body.value === 'b-staging-rotated');
    expect(waited).toBeLessThan(1000);
    ALL_VALUES.push('b-staging-rotated');
  });

  it('refuses a file whose MAC does not match, and serves nothing from it', async () => {
    const t = await tokenFor({ environment: 'tampered', key_pattern: '*' }, wideKey);
    expect((await call(vault('tampered/A_KEY'), { auth: t })).body.value).toBe('tamper-a-value');
    const file = path.join(store.dir, 'tampered.enc.yaml');
    const text = await readFile(file, 'utf8');
    // Drop B_KEY's line: A_KEY still decrypts, only the MAC can tell.
    const edited = text.split('\n').filter((line) => !line.startsWith('B_KEY:')).join('\n');
    expect(edited).not.toBe(text);
    await writeFile(file, edited);
    await until(async () => (await call(vault('tampered/A_KEY'), { auth: t })).status === 500);
    for (const request of [call(vault('tampered/A_KEY'), { auth: t }), call(vault('tampered'), { auth: t }), call(vault('secrets/batch'), { auth: t, json: { environment: 'tampered' } })]) {
      const reply = await request;
      expect(reply.status).toBe(500);
      expect(reply.body.error.code).toBe('RWS_STORE_INVALID');
      expect(reply.text).not.toContain('tamper-a-value');
    }
  });
  it('refuses a FIFO, a directory, a file over 16 MiB or a link put in place of a file at once, never waiting for a writer', async () => {
    const t = await tokenFor({ environment: 'tampered', key_pattern: '*' }, wideKey);
    const file = path.join(store.dir, 'tampered.enc.yaml');
    for (const make of [
      () => execFileSync('mkfifo', ['-m', '600', file]),
      () => mkdirSync(file, { mode: 0o700 }),
      // A valid file behind a long comment: the server would read and parse all of it.
      (valid: string) => writeFileSync(file, `#${'x'.repeat(16 * 1024 * 1024)}\n${valid}`, { mode: 0o600 }),
      // A link to a valid file outside the store: a 500 RWS_INTERNAL, "ELOOP" on /healthz.
      (valid: string) => {
        const outside = path.join(store.root, 'linked-target.enc.yaml');
        writeFileSync(outside, valid, { mode: 0o600 });
        symlinkSync(outside, file);
      },
    ]) {
      rmSync(file, { recursive: true, force: true });
      await cliOk(['secret', 'set', 'tampered', 'A_KEY', '--store', store.dir], { input: 'tamper-a-value' });
      await until(async () => (await call(vault('tampered/A_KEY'), { auth: t })).status === 200);
      const valid = await readFile(file, 'utf8');
      rmSync(file);
      make(valid);
      await until(async () => (await call(vault('tampered/A_KEY'), { auth: t })).status === 500, 5000);
      const reply = await call(vault('tampered/A_KEY'), { auth: t });
      expect(reply.body.error.code).toBe('RWS_STORE_INVALID');
      expect((await call(`${server.url}/healthz`)).body.environments.tampered).toEqual({ error: 'RWS_STORE_INVALID' });
    }
  });
});

describe('audit log', () => {
  it('names at most the first 50 names asked for in a refused request\'s row, and counts the rest; the chain verifies', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: 'SERVICE_B_*' });
    // 1,000 names of 60 characters: as many as a 64 KiB body holds.
    const long = (i: number) => `OUTSIDE_${String(i).padStart(4, '0')}_${'X'.repeat(47)}`;
    const many = Array.from({ length: 1000 }, (_, i) => long(i));
    const cases: Array<[number, string[], string[]]> = [
      // Outside the token's scope (403, no use charged): the row named all 1,000 (62 KB).
      [403, many, [...many.slice(0, 50), '+950 more']],
      // Within the scope, but not there (404).
      [404, Array.from({ length: 60 }, (_, i) => `SERVICE_B_${i}`), [...Array.from({ length: 50 }, (_, i) => `SERVICE_B_${i}`), '+10 more']],
      // 50 are named as they are.
      [403, many.slice(0, 50), many.slice(0, 50)],
    ];
    for (const [status, keys, audited] of cases) {
      const reply = await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys } });
      expect(reply.status).toBe(status);
      const text = await cliOk(['audit', '--json', '--limit', '1', '--store', store.dir]);
      const row = JSON.parse(text);
      expect(row).toMatchObject({ event: 'secret.batch', status, environment: 'production', keys: audited });
      expect(text.length).toBeLessThan(8 * 1024);
    }
    expect(await cliOk(['audit', 'verify', '--store', store.dir])).toMatch(/verified/);
  });

  it('an API key sent where a subject, an environment, a pattern or a name goes is refused or redacted: the trail, the token records and the database never hold it', async () => {
    const t = await tokenFor({ environment: 'production', key_pattern: '*' }, wideKey);
    // A mint would put it in the token and its record (the admin token list, the console).
    for (const request of [
      { subject: wideKey, environment: 'production', key_pattern: 'SERVICE_B_KEY' },
      { subject: `job ${wideKey.toUpperCase()} nightly`, environment: 'production', key_pattern: 'SERVICE_B_KEY' },
      { subject: 's', environment: wideKey, key_pattern: 'SERVICE_B_KEY' },
      { subject: 's', environment: 'production', key_pattern: wideKey },
    ]) {
      const reply = await generate(server, wideKey, request);
      expect(reply.status, JSON.stringify(request)).toBe(400);
      expect(reply.body.error.message).toMatch(/looks like an API key/);
      expect(reply.text.toLowerCase()).not.toContain(wideKey);
    }
    // Reads name what they asked for in their rows, a refused one too, with a token or none.
    // Their answers go to whoever sent the key, but through proxies and logs: not quoted back either.
    const answers = [
      [404, await call(vault(`production/${wideKey}`), { auth: t })],
      [404, await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', keys: ['SERVICE_B_KEY', wideKey] } })],
      [400, await call(vault('secrets/batch'), { auth: t, json: { environment: 'production', [wideKey]: 1 } })],
      [401, await call(vault(`${wideKey}/SERVICE_B_KEY`), { dispatcher: fromAddress(25) })],
    ] as const;
    for (const [status, reply] of answers) {
      expect(reply.status).toBe(status);
      expect(reply.text.toLowerCase()).not.toContain(wideKey);
    }
    expect(answers[0][1].body.error.message).toBe('environment production has no secret rws_sk_[redacted]');
    const rows = await cliOk(['audit', '--json', '--limit', '7', '--store', store.dir]);
    expect(rows).toContain('rws_sk_[redacted]');
    expect(rows.toLowerCase()).not.toContain(wideKey);
    expect(await cliOk(['audit', 'verify', '--store', store.dir])).toMatch(/verified/);
    const admin = await makeApiKey(store, [], [], ['--admin']);
    const tokens = await call(`${server.url}/api/v1/vault/tokens`, { auth: admin.key });
    expect(tokens.status).toBe(200);
    expect(tokens.text.toLowerCase()).not.toContain(wideKey);
  });

  it('has one well-formed row per credentialed request, with no value, token or API key in it or in the database file', async () => {
    const text = await cliOk(['audit', '--json', '--limit', '10000', '--store', store.dir]);
    const lines = text.trim().split('\n').map((line) => JSON.parse(line)).reverse();
    expect(lines.length).toBeGreaterThan(50);
    for (const line of lines) {
      expect(Object.keys(line)).toEqual(['seq', 'time', 'event', 'outcome', 'status', 'error_code', 'api_key_id', 'jti', 'subject', 'environment', 'keys', 'client', 'count', 'hash']);
    }
    expect(lines.map((line) => line.seq)).toEqual(lines.map((_, index) => index + 1));
    const events = new Set(lines.map((line) => line.event));
    for (const event of ['token.generate', 'secret.read', 'secret.list', 'secret.batch', 'token.revoke', 'auth.failure']) expect(events).toContain(event);
    const read = lines.find((line) => line.event === 'secret.read' && line.outcome === 'success');
    expect(read).toMatchObject({ environment: 'production', keys: ['SERVICE_B_KEY'], client: '127.0.0.1', status: 200 });
    expect(read.jti).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(read.api_key_id).toMatch(/^ak_[0-9a-f]{16}$/);
    expect(lines.find((line) => line.event === 'token.generate' && line.outcome === 'success').api_key_id).toMatch(/^ak_/);
    expect(lines.some((line) => line.client === '127.0.0.14' && line.event === 'auth.failure')).toBe(true);
    for (const value of ALL_VALUES) expect(text).not.toContain(value);
    for (const t of tokensSeen) {
      expect(text).not.toContain(t);
      expect(text).not.toContain(t.split('.')[2]);
    }
    for (const key of keysSeen) expect(text).not.toContain(key.slice(7));
    expect(text).not.toContain(jwtSecret);
    // The database's own bytes (main file and write-ahead log) hold none of them either.
    const raw = (await Promise.all(['state.db', 'state.db-wal'].map((name) => readFile(path.join(store.dir, name)).catch(() => Buffer.alloc(0))))).map((b) => b.toString('latin1')).join('');
    expect(raw.length).toBeGreaterThan(0);
    for (const value of ALL_VALUES) expect(raw).not.toContain(value);
    for (const t of tokensSeen) expect(raw).not.toContain(t.split('.')[2]);
    for (const key of keysSeen) expect(raw).not.toContain(key.slice(7));
  });
});
