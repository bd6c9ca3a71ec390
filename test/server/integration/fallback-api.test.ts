// The server's side of the offline fallback, over HTTP against the built bin: what each batch
// answer says of caching (usage limits, --no-fallback keys, the key's expiry, serve
// --fallback-max-age), keys made with fallback false over the admin API, and POST
// /api/v1/fallback/uses with hostile bodies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, call, cli, cliOk, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';

const SECRETS = { production: { JOB_A: 'fallback-api-value-a', JOB_B: 'fallback-api-value-b' }, staging: { JOB_A: 'staging-value' } };
const HOUR = 3_600_000;

let store: TestStore;
let server: RunningServer;
let readKey: { id: string; key: string };
let noFallbackKey: { id: string; key: string };
let expiringKey: { id: string; key: string };
let adminKey: { id: string; key: string };
const expiresAt = new Date(Date.now() + 2 * HOUR).toISOString();

beforeAll(async () => {
  store = await makeStore(SECRETS);
  [readKey, noFallbackKey, expiringKey, adminKey] = await Promise.all([
    makeApiKey(store, ['production'], ['JOB_*']),
    makeApiKey(store, ['production'], ['JOB_*'], ['--no-fallback']),
    makeApiKey(store, ['production'], ['JOB_*'], ['--expires-at', expiresAt]),
    cliOk(['apikey', 'create', '--store', store.dir, '--name', 'ops', '--admin']).then((out) => ({ id: /^id: (\S+)$/m.exec(out)![1]!, key: /^key: (\S+)$/m.exec(out)![1]! })),
  ]);
  server = await startServer(store, ['--fallback-max-age', '3h']);
}, 60_000);

afterAll(async () => {
  const log = server?.stderr() ?? '';
  for (const key of [readKey, noFallbackKey, expiringKey, adminKey]) if (key) expect(log).not.toContain(key.key);
  await server?.stop();
  await store?.cleanup();
});

async function batch(apiKey: string, usageLimit: number | undefined) {
  const minted = await token(server, apiKey, { environment: 'production', key_pattern: 'JOB_*', ...(usageLimit === undefined ? {} : { usage_limit: usageLimit }) });
  return call(`${server.url}/api/v1/vault/secrets/batch`, { auth: minted, json: { environment: 'production', pattern: 'JOB_*' } });
}

describe('the fallback field of batch answers', () => {
  it('allows caching a token without a usage limit until now + --fallback-max-age', async () => {
    const before = Date.now();
    const reply = await batch(readKey.key, undefined);
    expect(reply.status).toBe(200);
    expect(Object.keys(reply.body).sort()).toEqual(['environment', 'fallback', 'secrets']);
    expect(Object.keys(reply.body.fallback).sort()).toEqual(['allowed', 'not_after']);
    expect(reply.body.fallback.allowed).toBe(true);
    const notAfter = Date.parse(reply.body.fallback.not_after);
    expect(notAfter).toBeGreaterThanOrEqual(before + 3 * HOUR - 1000);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 3 * HOUR + 1000);
  });

  it('never for a usage-limited token, nor for a --no-fallback key', async () => {
    expect((await batch(readKey.key, 1)).body.fallback).toEqual({ allowed: false, not_after: null });
    expect((await batch(readKey.key, 1000)).body.fallback).toEqual({ allowed: false, not_after: null });
    expect((await batch(noFallbackKey.key, undefined)).body.fallback).toEqual({ allowed: false, not_after: null });
  });

  it('never past the key\'s own expiry', async () => {
    expect((await batch(expiringKey.key, undefined)).body.fallback).toEqual({ allowed: true, not_after: new Date(expiresAt).toISOString() });
  });

  it('apikey list shows no-fallback keys; serve refuses a bad --fallback-max-age', async () => {
    const listed = (await cliOk(['apikey', 'list', '--json', '--store', store.dir])).trim().split('\n').map((line) => JSON.parse(line));
    expect(listed.find((k) => k.id === noFallbackKey.id)).toMatchObject({ fallback: false });
    expect(listed.find((k) => k.id === readKey.id)).toMatchObject({ fallback: true });
    expect(await cliOk(['apikey', 'list', '--store', store.dir])).toMatch(new RegExp(`${noFallbackKey.id}  "test"  no-fallback  environments=`));
    for (const value of ['24', '1h30m', '-1h']) {
      const refused = await cli(['serve', '--store', store.dir, '--port', '0', '--fallback-max-age', value]);
      expect(refused.exitCode, value).toBe(2);
      expect(refused.stderr).toContain(`Expected --fallback-max-age to be a duration such as 30m, 24h or 7d (one whole number and one unit: s, m, h or d; from 1s to 90d), got "${value}"`);
    }
    // Written as durations, out of range: the range is what is said, zero's lower end included.
    for (const value of ['0h', '0s', '91d']) {
      const refused = await cli(['serve', '--store', store.dir, '--port', '0', '--fallback-max-age', value]);
      expect(refused.exitCode, value).toBe(2);
      expect(refused.stderr).toContain(`Expected --fallback-max-age to be from 1s to 90d, got "${value}"`);
    }
  });

  it('the admin API makes keys with fallback: false, lists them so, and refuses a fallback that is not a boolean', async () => {
    const asAdmin = (method: string, route: string, json?: unknown) => call(`${server.url}${route}`, { method, auth: adminKey.key, ...(json === undefined ? {} : { json }) });
    const created = await asAdmin('POST', '/api/v1/auth/keys', { name: 'cron', environments: ['production'], key_patterns: ['JOB_*'], fallback: false });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'cron', fallback: false });
    const listed = await asAdmin('GET', '/api/v1/auth/keys');
    expect(JSON.stringify(listed.body)).toContain(`"id":"${created.body.id}"`);
    const made = (listed.body.keys ?? listed.body).find((k: { id: string }) => k.id === created.body.id);
    expect(made).toMatchObject({ fallback: false });
    expect((await batch(created.body.key, undefined)).body.fallback).toEqual({ allowed: false, not_after: null });
    for (const fallback of ['false', 0, null, {}]) {
      const refused = await asAdmin('POST', '/api/v1/auth/keys', { name: 'bad', environments: ['production'], key_patterns: ['JOB_*'], fallback });
      expect(refused.status).toBe(400);
      expect(refused.body.error.message).toBe('fallback must be true or false');
    }
  });
});

describe('POST /api/v1/fallback/uses', () => {
  const report = (json: unknown, auth = readKey.key) => call(`${server.url}/api/v1/fallback/uses`, { auth, json });
  const good = () => ({ subject: 'nightly@host:backup', environment: 'production', keys: ['JOB_A', 'JOB_B'], used_at: new Date(Date.now() - HOUR).toISOString() });

  it('records one secret.offline_use row: the key, names, subject with the time of the run, never a value', async () => {
    const use = good();
    const reply = await report(use);
    expect(reply.status).toBe(204);
    const row = auditRowsSync(store.dir).at(-1);
    expect(row).toMatchObject({ event: 'secret.offline_use', outcome: 'success', status: 204, api_key_id: readKey.id, environment: 'production', keys: ['JOB_A', 'JOB_B'], subject: `nightly@host:backup (offline at ${use.used_at})` });
    // The row's own time is the server's: a client cannot date the trail.
    expect(Date.parse(row!.time as string)).toBeGreaterThan(Date.parse(use.used_at) + HOUR - 60_000);
  });

  it('says what is wrong with a used_at it refuses: not a time, ahead of the clock, or too old', async () => {
    const said = async (usedAt: unknown) => (await report({ ...good(), used_at: usedAt })).body.error.message;
    expect(await said('yesterday')).toBe('used_at must be an ISO 8601 time such as 2030-01-31T00:00:00Z');
    expect(await said(new Date(Date.now() + HOUR).toISOString())).toBe("used_at is more than 5 minutes ahead of the server's clock; check the client's clock");
    expect(await said(new Date(Date.now() - 91 * 24 * HOUR).toISOString())).toBe('used_at is older than 90 days; a use that old is no longer recorded');
  });

  it('refuses hostile bodies with 400, reports outside the grants with 403, bad keys with 401', async () => {
    const cases: Array<[string, unknown, number]> = [
      ['an extra field', { ...good(), value: 'x' }, 400],
      ['__proto__', JSON.parse(`{"__proto__": {"admin": true}, "subject": "s", "environment": "production", "keys": [], "used_at": "${new Date().toISOString()}"}`), 400],
      ['no subject', { ...good(), subject: undefined }, 400],
      ['a control character in the subject', { ...good(), subject: 'a\u0007b' }, 400],
      ['a subject of 257 characters', { ...good(), subject: 'x'.repeat(257) }, 400],
      ['a bad environment', { ...good(), environment: '../etc' }, 400],
      ['keys not a list', { ...good(), keys: 'JOB_A' }, 400],
      ['a bad name', { ...good(), keys: ['JOB A'] }, 400],
      ['1001 names', { ...good(), keys: Array.from({ length: 1001 }, (_, i) => `JOB_${i}`) }, 400],
      ['used_at not a time', { ...good(), used_at: 'yesterday' }, 400],
      ['used_at a number', { ...good(), used_at: Date.now() }, 400],
      ['used_at in the future', { ...good(), used_at: new Date(Date.now() + HOUR).toISOString() }, 400],
      ['used_at 91 days ago', { ...good(), used_at: new Date(Date.now() - 91 * 24 * HOUR).toISOString() }, 400],
      ['an environment the key does not grant', { ...good(), environment: 'staging' }, 403],
      ['a name outside its patterns', { ...good(), keys: ['OTHER'] }, 403],
    ];
    for (const [what, body, status] of cases) {
      const reply = await report(body);
      expect(reply.status, what).toBe(status);
    }
    expect((await report(good(), adminKey.key)).status).toBe(403);
    expect((await report(good(), `rws_sk_${'0'.repeat(32)}`)).status).toBe(401);
    const huge = await call(`${server.url}/api/v1/fallback/uses`, { auth: readKey.key, body: JSON.stringify({ ...good(), subject: 'x'.repeat(70 * 1024) }), headers: { 'content-type': 'application/json' } });
    expect(huge.status).toBe(413);
    expect((await call(`${server.url}/api/v1/fallback/uses`, { auth: readKey.key })).status).toBe(405);
    // Each refusal is audited as one, and none of them counts as a use.
    const rows = auditRowsSync(store.dir).filter((row) => row.event === 'secret.offline_use');
    expect(rows.filter((row) => row.outcome === 'success')).toHaveLength(1);
    expect(rows.filter((row) => row.outcome === 'failure').length).toBeGreaterThanOrEqual(cases.length);
  });
});
