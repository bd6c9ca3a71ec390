// Answers no honest server sends, from a raw TCP stub: each is refused with RWS_VAULT_BAD_RESPONSE
// (never a crash, never a partly trusted result), and no credential or value reaches the error.
import { describe, expect, it } from 'vitest';
import { expectVaultError, type TestClient } from './helpers/client.js';
import { json, reply, type Responder, withStub } from './helpers/stub.js';

const TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6InJ3cyJ9.eyJzdWIiOiJzdHViIn0.c3R1Yi1zaWduYXR1cmU';
const API_KEY = `rws_sk_${'ab'.repeat(16)}`;
const SECRET = 'stub-secret-value-d41d';
const SECRETS = [TOKEN, API_KEY, SECRET];
const REQUEST = { subject: 'stub', environment: 'prod', keyPattern: 'SERVICE_*', ttlMinutes: 1, usageLimit: 1 };

const batchAnswer = (body: string) => (socket: Parameters<Responder>[0]) => reply(socket, 200, body);
const batch = (t: TestClient, selector: { keys?: string[]; pattern?: string } = { pattern: 'SERVICE_*' }) => t.client.fetchBatch(TOKEN, 'prod', selector);

describe('malformed batch answers', () => {
  const cases: Array<[string, string]> = [
    ['invalid JSON that quotes a value', `{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}"`],
    ['not an object', `["${SECRET}"]`],
    ['missing secrets', '{"environment":"prod"}'],
    ['another environment', `{"environment":"staging","secrets":{"SERVICE_A":"${SECRET}"}}`],
    ['secrets as a list', `{"environment":"prod","secrets":["${SECRET}"]}`],
    ['a number as value', '{"environment":"prod","secrets":{"SERVICE_A":42}}'],
    ['a null value', '{"environment":"prod","secrets":{"SERVICE_A":null}}'],
    ['an invalid name', `{"environment":"prod","secrets":{"SERVICE A;rm":"${SECRET}"}}`],
    ['a name outside the pattern', `{"environment":"prod","secrets":{"OTHER_KEY":"${SECRET}"}}`],
    ['an extra field', `{"environment":"prod","secrets":{},"note":"${SECRET}"}`],
    ['__proto__ as a secret name', `{"environment":"prod","secrets":{"__proto__":"${SECRET}"}}`],
    ['__proto__ holding an object', `{"environment":"prod","secrets":{"__proto__":{"polluted":"${SECRET}"}}}`],
    ['__proto__ at the top', `{"environment":"prod","secrets":{},"__proto__":{"polluted":"${SECRET}"}}`],
    // JSON.parse keeps the last silently: which value the wrapper injects must not depend on that.
    ['a name given twice', `{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}","SERVICE_A":"other"}}`],
    ['a name given twice, once escaped', `{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}","SERVICE_\\u0041":"other"}}`],
    ['environment given twice', `{"environment":"staging","environment":"prod","secrets":{"SERVICE_A":"${SECRET}"}}`],
    ['invalid UTF-8', Buffer.concat([Buffer.from('{"environment":"prod","secrets":{"SERVICE_A":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}}')]).toString('latin1')],
  ];
  it.each(cases)('refuses %s', async (_name, body) => {
    await withStub(
      (socket) => reply(socket, 200, Buffer.from(body, 'latin1')),
      async (t) => {
        await expectVaultError(batch(t), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
      },
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses a batch answer that lacks a key asked for, or adds one', async () => {
    await withStub(batchAnswer(`{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}"}}`), async (t) => {
      const error = await expectVaultError(batch(t, { keys: ['SERVICE_A', 'SERVICE_B'] }), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
      expect(error.message).toContain('SERVICE_B');
      await expectVaultError(batch(t, { keys: ['SERVICE_B'] }), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
    });
  });

  it('accepts quotes, braces, commas and escapes inside values (no name is seen twice there)', async () => {
    const value = `\\"{[,\\"SERVICE_A\\":]}\\\\`;
    await withStub(batchAnswer(`{"environment":"prod","secrets":{"SERVICE_A":"${value}","SERVICE_B":"${value}"},"fallback":{"allowed":false,"not_after":null}}`), async (t) => {
      expect([...(await batch(t))]).toEqual([['SERVICE_A', JSON.parse(`"${value}"`)], ['SERVICE_B', JSON.parse(`"${value}"`)]]);
    });
  });

  it('accepts a well-formed answer and sends the request the API pins', async () => {
    await withStub(batchAnswer(`{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}","SERVICE_B":""}}`), async (t, stub) => {
      expect([...(await batch(t))]).toEqual([['SERVICE_A', SECRET], ['SERVICE_B', '']]);
      const [request] = stub.requests;
      expect(request).toMatchObject({ method: 'POST', path: '/api/v1/vault/secrets/batch' });
      expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(request?.headers['content-type']).toBe('application/json');
      expect(JSON.parse(request?.body ?? '')).toEqual({ environment: 'prod', pattern: 'SERVICE_*' });
    });
  });

  it('refuses a non-JSON content type without reading the body', async () => {
    await withStub(
      (socket) => reply(socket, 200, `{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}"}}`, { 'content-type': 'text/html' }),
      async (t) => {
        const error = await expectVaultError(batch(t), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
        expect(error.message).toContain('application/json');
      },
    );
  });
});

describe('malformed fallback fields of batch answers', () => {
  const answer = (fallback: string) => `{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}"},"fallback":${fallback}}`;
  const answerOf = (t: TestClient) => t.client.fetchBatchAnswer(TOKEN, 'prod', { pattern: 'SERVICE_*' });
  const cases: Array<[string, string]> = [
    ['null', 'null'],
    ['a list', '[true, "2030-01-01T00:00:00Z"]'],
    ['allowed as a string', '{"allowed":"true","not_after":"2030-01-01T00:00:00Z"}'],
    ['allowed as 1', '{"allowed":1,"not_after":"2030-01-01T00:00:00Z"}'],
    ['allowed without not_after', '{"allowed":true}'],
    ['allowed with a null not_after', '{"allowed":true,"not_after":null}'],
    ['not_after not a time', '{"allowed":true,"not_after":"tomorrow"}'],
    ['not_after a number', '{"allowed":true,"not_after":1893456000}'],
    ['not_after without a zone', '{"allowed":true,"not_after":"2030-01-01T00:00:00"}'],
    ['not_after an impossible date', '{"allowed":true,"not_after":"2030-02-31T00:00:00Z"}'],
    ['refused with a date', '{"allowed":false,"not_after":"2030-01-01T00:00:00Z"}'],
    ['an extra field', '{"allowed":true,"not_after":"2030-01-01T00:00:00Z","max_age":"forever"}'],
    ['__proto__ in it', '{"allowed":true,"not_after":"2030-01-01T00:00:00Z","__proto__":{"polluted":1}}'],
  ];
  it.each(cases)('refuses %s', async (_name, fallback) => {
    await withStub(batchAnswer(answer(fallback)), async (t) => {
      await expectVaultError(answerOf(t), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('accepts the two documented shapes, and an answer without the field (an older server: nothing may be cached)', async () => {
    await withStub(batchAnswer(answer('{"allowed":true,"not_after":"2030-01-01T00:00:00.000Z"}')), async (t) => {
      expect((await answerOf(t)).fallback).toEqual({ allowed: true, notAfter: '2030-01-01T00:00:00.000Z' });
    });
    await withStub(batchAnswer(answer('{"allowed":false,"not_after":null}')), async (t) => {
      expect((await answerOf(t)).fallback).toEqual({ allowed: false, notAfter: null });
    });
    await withStub(batchAnswer(`{"environment":"prod","secrets":{"SERVICE_A":"${SECRET}"}}`), async (t) => {
      expect((await answerOf(t)).fallback).toBeUndefined();
    });
  });
});

describe('malformed token answers', () => {
  const good = { token: TOKEN, token_type: 'Bearer', jti: 'abc_DEF-123', expires_at: '2030-01-01T00:00:00.000Z', scope: { environment: 'prod', key_pattern: 'SERVICE_*', permissions: ['read'] }, usage_limit: 1 };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['a token that is not a compact JWT', { ...good, token: `${TOKEN}\n` }],
    ['a token that is not a string', { ...good, token: 42 }],
    ['a missing jti', { ...good, jti: undefined }],
    ['a bad expires_at', { ...good, expires_at: 'tomorrow' }],
    ['a string usage_limit', { ...good, usage_limit: '1' }],
    ['a zero usage_limit', { ...good, usage_limit: 0 }],
    ['a broader scope than asked', { ...good, scope: { ...good.scope, key_pattern: '*' } }],
    ['another environment', { ...good, scope: { ...good.scope, environment: 'staging' } }],
    ['another token type', { ...good, token_type: 'MAC' }],
    ['a null usage_limit when one was asked', { ...good, usage_limit: null }],
  ];
  it.each(cases)('refuses %s', async (_name, body) => {
    await withStub(
      (socket) => json(socket, 201, body),
      async (t) => {
        await expectVaultError(t.client.mintToken(API_KEY, REQUEST), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
      },
    );
  });

  it('accepts the documented answer', async () => {
    await withStub(
      (socket) => json(socket, 201, good),
      async (t, stub) => {
        expect(await t.client.mintToken(API_KEY, REQUEST)).toEqual({ token: TOKEN, jti: 'abc_DEF-123', expiresAt: good.expires_at, environment: 'prod', keyPattern: 'SERVICE_*', usageLimit: 1 });
        expect(JSON.parse(stub.requests[0]?.body ?? '')).toEqual({ subject: 'stub', environment: 'prod', key_pattern: 'SERVICE_*', ttl_minutes: 1, usage_limit: 1 });
        expect(stub.requests[0]?.headers.authorization).toBe(`Bearer ${API_KEY}`);
      },
    );
  });
});

describe('malformed key and list answers', () => {
  it('checks the per-key answer names the key asked for and holds a string', async () => {
    const answers = [
      { environment: 'prod', key: 'SERVICE_B', value: SECRET },
      { environment: 'prod', key: 'SERVICE_A', value: 7 },
      { environment: 'prod', key: 'SERVICE_A' },
      { environment: 'prod', key: 'SERVICE_A', value: SECRET },
    ];
    await withStub(
      (socket, _request, index) => json(socket, 200, answers[index]),
      async (t, stub) => {
        for (let i = 0; i < 3; i++) await expectVaultError(t.client.fetchKey(TOKEN, 'prod', 'SERVICE_A'), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
        expect(await t.client.fetchKey(TOKEN, 'prod', 'SERVICE_A')).toBe(SECRET);
        expect(stub.requests[3]).toMatchObject({ method: 'GET', path: '/api/v1/vault/prod/SERVICE_A' });
      },
    );
  });

  it('checks the key list: names, pattern, duplicates', async () => {
    const answers = [
      { environment: 'prod', keys: ['SERVICE_A', 'OTHER'] },
      { environment: 'prod', keys: ['SERVICE_A', 'SERVICE_A'] },
      { environment: 'prod', keys: 'SERVICE_A' },
      { environment: 'prod', keys: ['SERVICE_A', 'SERVICE_B'] },
    ];
    await withStub(
      (socket, _request, index) => json(socket, 200, answers[index]),
      async (t, stub) => {
        for (let i = 0; i < 3; i++) await expectVaultError(t.client.listKeys(TOKEN, 'prod', 'SERVICE_*'), 'RWS_VAULT_BAD_RESPONSE', SECRETS);
        expect(await t.client.listKeys(TOKEN, 'prod', 'SERVICE_*')).toEqual(['SERVICE_A', 'SERVICE_B']);
        expect(stub.requests[3]?.path).toBe('/api/v1/vault/prod?pattern=SERVICE_*');
      },
    );
  });
});
