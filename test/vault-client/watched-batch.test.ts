// The --watch batch call against a raw stub: tags that are not entity tags are ignored (never
// echoed back), a 304 needs no body, and the held request's extra time is asked for.
import { describe, expect, it } from 'vitest';
import { entityTag } from '../../src/vault-client/http.js';
import { expectVaultError } from './helpers/client.js';
import { json, reply, withStub } from './helpers/stub.js';

const TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6InJ3cyJ9.eyJzdWIiOiJzdHViIn0.c3R1Yi1zaWduYXR1cmU';
const ANSWER = { environment: 'prod', secrets: { SERVICE_A: 'stub-secret-value' } };

describe('entityTag', () => {
  it.each(['"v1-abc"', 'W/"v1-abc"', '""', `"${'a'.repeat(250)}"`])('keeps %s', (tag) => {
    expect(entityTag(tag)).toBe(tag);
  });
  it.each(['v1-abc', '"a"b"', '"a b"', '"a\r\nSet-Cookie: x"', 'w/"a"', `"${'a'.repeat(300)}"`, '"é"', '"a",\t"b"', ''])('ignores %j', (tag) => {
    expect(entityTag(tag)).toBeUndefined();
  });
  it('ignores a repeated header', () => {
    expect(entityTag(['"a"', '"b"'])).toBeUndefined();
  });
});

describe('fetchBatchWatched', () => {
  it('sends If-None-Match and ?wait, and reads a 304 as unchanged, keeping the held tag', async () => {
    await withStub(
      (socket) => reply(socket, 304, ''),
      async (t, stub) => {
        const answer = await t.client.fetchBatchWatched(TOKEN, 'prod', { pattern: 'SERVICE_*' }, { etag: '"v1-x"', waitSeconds: 30 });
        expect(answer).toEqual({ changed: false, etag: '"v1-x"' });
        expect(stub.requests[0]!.path).toBe('/api/v1/vault/secrets/batch?wait=30');
        expect(stub.requests[0]!.headers['if-none-match']).toBe('"v1-x"');
      },
    );
  });

  it('caps the wait at 60 s and sends none for 0', async () => {
    await withStub(
      (socket) => json(socket, 200, ANSWER, { etag: '"v1-y"' }),
      async (t, stub) => {
        expect(await t.client.fetchBatchWatched(TOKEN, 'prod', { pattern: 'SERVICE_*' }, { waitSeconds: 600 })).toEqual({ changed: true, secrets: new Map([['SERVICE_A', 'stub-secret-value']]), etag: '"v1-y"' });
        await t.client.fetchBatchWatched(TOKEN, 'prod', { pattern: 'SERVICE_*' }, { waitSeconds: 0 });
        expect(stub.requests.map((request) => request.path)).toEqual(['/api/v1/vault/secrets/batch?wait=60', '/api/v1/vault/secrets/batch']);
        expect(stub.requests[0]!.headers['if-none-match']).toBeUndefined();
      },
    );
  });

  it('a tag that is not an entity tag is dropped: the answer is untagged (plain polling)', async () => {
    await withStub(
      (socket) => json(socket, 200, ANSWER, { etag: 'not-quoted stub-secret-value' }),
      async (t) => {
        const answer = await t.client.fetchBatchWatched(TOKEN, 'prod', { pattern: 'SERVICE_*' }, {});
        expect(answer.etag).toBeUndefined();
      },
    );
  });

  it('a 304 to a request that held no tag is an error, not "unchanged"', async () => {
    await withStub(
      (socket) => reply(socket, 304, ''),
      async (t) => {
        await expectVaultError(t.client.fetchBatchWatched(TOKEN, 'prod', { pattern: 'SERVICE_*' }, {}), 'RWS_VAULT_BAD_RESPONSE');
      },
    );
  });
});
