// A real token's jti signed again with the store's own signing secret and other claims (a wider
// scope, no usage limit): jtis are not secret (audit rows, the admin token list), so anyone who
// holds `jwt-secret` could try it. The state's record of the token decides: the server refuses such
// a token on every route exactly as one it holds no record of, charges nothing, and audits a
// failure. On SQLite and on PostgreSQL, whose servers answer unlimited tokens from a cache.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { craft, GOOD_HEADER } from '../helpers/jwt.js';
import { call, cliOk, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

const SECRETS = {
  production: { DB_PASSWORD: 'prod-db-password', DB_USER: 'prod-db-user', API_TOKEN: 'prod-api-token' },
  staging: { DB_PASSWORD: 'staging-db-password' },
};
const NO_RECORD = { code: 'RWS_AUTH_FAILED', message: 'this vault holds no record of the token; mint a new one with POST /api/v1/vault/tokens/generate' };
const claimsOf = (t: string): Record<string, unknown> => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString());

describe.each([
  ['SQLite', 30, async () => undefined],
  ['PostgreSQL', 40, testDatabase],
] as const)('a real token signed again with other claims, on %s', (_name, firstAddress, database) => {
  let store: TestStore;
  let db: { url: string; drop(): Promise<void> } | undefined;
  let env: Record<string, string>;
  let server: RunningServer;
  let apiKey: { id: string; key: string };
  let secret: string;
  // The refusals come from their own loopback addresses, so the per-address 401 limit never bites.
  const fromAddress = (n: number) => new Agent({ localAddress: `127.0.0.${firstAddress + n}` });

  beforeAll(async () => {
    store = await makeStore(SECRETS);
    db = await database();
    env = db ? { RWS_DATABASE_URL: db.url } : {};
    // The issuing key grants production DB_* only: never staging, never API_TOKEN.
    const out = await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'db-reader', '--environment', 'production', '--key-pattern', 'DB_*'], { env });
    apiKey = { id: /^id: (\S+)$/m.exec(out)?.[1] as string, key: /^key: (\S+)$/m.exec(out)?.[1] as string };
    secret = await readFile(path.join(store.dir, 'jwt-secret'), 'utf8');
    server = await startServer(store, [], env);
  }, 60_000);

  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
    await db?.drop();
    await store?.cleanup();
  });

  const vault = (suffix: string) => `${server.url}/api/v1/vault/${suffix}`;
  /** The same jti, iat and exp, signed with the store's secret after `change`. */
  const resign = (real: string, change: (claims: Record<string, unknown>) => void): string => {
    const claims = claimsOf(real);
    change(claims);
    return craft(GOOD_HEADER, claims, { secret });
  };
  const auditRowsOf = async (jti: unknown): Promise<Array<Record<string, unknown>>> =>
    (await cliOk(['audit', '--json', '--limit', '10000', '--store', store.dir], { env }))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((row) => row.jti === jti);

  /** Every route that takes a token, as the forged token's holder would ask it, one after another (the revocation last). */
  const everyRoute = async (forged: string, environment: string, dispatcher: Agent) => {
    const requests = [
      () => call(vault(`${environment}/DB_PASSWORD`), { auth: forged, dispatcher }),
      () => call(vault(environment), { auth: forged, dispatcher }),
      () => call(vault('secrets/batch'), { auth: forged, json: { environment }, dispatcher }),
      () => call(vault('secrets/batch?wait=5'), { auth: forged, json: { environment, keys: ['DB_PASSWORD'] }, headers: { 'if-none-match': '"v1-anything"' }, dispatcher }),
      () => call(vault('tokens/revoke'), { auth: forged, method: 'POST', dispatcher }),
    ];
    const replies = [];
    for (const request of requests) replies.push(await request());
    return replies;
  };

  it('a wider scope is refused on every route like a token with no record, and audited as a failure', async () => {
    const real = await token(server, apiKey.key, { environment: 'production', key_pattern: 'DB_*' });
    // Read once first: a PostgreSQL server now holds the record in its cache.
    expect((await call(vault('production/DB_PASSWORD'), { auth: real })).body.value).toBe('prod-db-password');
    const dispatcher = fromAddress(1);
    const wider = { environment: 'staging', key_pattern: '*', permissions: ['read'] };
    const replies = [
      ...(await everyRoute(resign(real, (claims) => void (claims.scope = wider)), 'staging', dispatcher)),
      ...(await everyRoute(resign(real, (claims) => void (claims.scope = { ...wider, environment: 'production' })), 'production', dispatcher)),
      await call(vault('production/API_TOKEN'), { auth: resign(real, (claims) => void (claims.scope = { ...wider, environment: 'production', key_pattern: 'API_*' })), dispatcher }),
    ];
    for (const reply of replies) {
      expect([reply.status, reply.body.error]).toEqual([401, NO_RECORD]);
      expect(reply.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      expect(reply.text).not.toMatch(/password|user|api-token/);
    }
    // The self-revoke was refused too: the real token still reads.
    expect((await call(vault('production/DB_USER'), { auth: real })).status).toBe(200);
    const rows = await auditRowsOf(claimsOf(real).jti);
    const failures = rows.filter((row) => row.outcome === 'failure');
    expect(failures).toHaveLength(replies.length);
    // Like a token with no record, save that the row names the key whose token was signed again.
    expect(failures.every((row) => row.event === 'auth.failure' && row.status === 401 && row.error_code === 'RWS_AUTH_FAILED' && row.api_key_id === apiKey.id)).toBe(true);
    expect(rows.filter((row) => row.outcome === 'success').map((row) => row.event)).toEqual(['secret.read', 'secret.read', 'token.generate']);
  });

  it('a usage limit removed or raised is refused, and the real token keeps its one use', async () => {
    const real = await token(server, apiKey.key, { environment: 'production', key_pattern: 'DB_*', usage_limit: 1 });
    const dispatcher = fromAddress(2);
    const unlimited = resign(real, (claims) => void delete claims.usage_limit);
    const raised = resign(real, (claims) => void (claims.usage_limit = 1000));
    const replies = [];
    for (let read = 0; read < 3; read += 1) replies.push(await call(vault('production/DB_PASSWORD'), { auth: unlimited, dispatcher }));
    replies.push(...(await everyRoute(unlimited, 'production', dispatcher)), ...(await everyRoute(raised, 'production', dispatcher)));
    for (const reply of replies) {
      expect([reply.status, reply.body.error]).toEqual([401, NO_RECORD]);
      expect(reply.text).not.toContain('prod-db');
    }
    // Nothing was charged to the record, nor was it revoked: one read, then spent.
    expect((await call(vault('production/DB_PASSWORD'), { auth: real })).body.value).toBe('prod-db-password');
    const spent = await call(vault('production/DB_PASSWORD'), { auth: real, dispatcher });
    expect([spent.status, spent.body.error.code]).toEqual([401, 'RWS_TOKEN_EXHAUSTED']);
    const rows = await auditRowsOf(claimsOf(real).jti);
    expect(rows.filter((row) => row.error_code === 'RWS_AUTH_FAILED' && row.event === 'auth.failure' && row.outcome === 'failure')).toHaveLength(replies.length);
    expect(rows.filter((row) => row.outcome === 'success').map((row) => row.event)).toEqual(['secret.read', 'token.generate']);
  });
});
