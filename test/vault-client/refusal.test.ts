// The 403/404 sentences of secrets-server, read into checked names. Anything else a body may
// hold never comes out: hostile messages give nothing.
import { describe, expect, it } from 'vitest';
import { parseRefusal } from '../../src/vault-client/refusal.js';

describe('parseRefusal', () => {
  it('reads what an API key grants from a 403', () => {
    expect(parseRefusal(403, 'this API key grants no access to environment prodution; it grants environments prod, staging with key patterns SERVICE_B_*, DB_?')).toEqual({
      kind: 'grants',
      environments: ['prod', 'staging'],
      patterns: ['SERVICE_B_*', 'DB_?'],
    });
  });

  it('tells a missing environment from a missing key in a 404', () => {
    expect(parseRefusal(404, 'no environment ghost')).toEqual({ kind: 'no-environment', environment: 'ghost' });
    expect(parseRefusal(404, 'environment prod has no secret DB_PASS')).toEqual({ kind: 'no-key', environment: 'prod', key: 'DB_PASS' });
    expect(parseRefusal(404, 'no such route')).toEqual({ kind: 'no-route' });
  });

  it.each([
    [403, 'x; it grants environments prod with key patterns hunter2 value'],
    [403, 'x; it grants environments ../etc with key patterns *'],
    [403, 'x; it grants environments prod with key patterns *\nsecret'],
    [403, 'x; it grants environments  with key patterns *'],
    [404, 'no environment prod\u001b[2J'],
    [404, 'no environment prod value=s3cret'],
    [404, 'environment prod has no secret DB-PASS'],
    [404, 'environment prod has no secret DB_PASS; value s3cret'],
    [404, 'this API key grants no access to environment prod; it grants environments prod with key patterns *'],
    [403, 'no environment prod'],
    [404, 42],
    [404, undefined],
    [403, `x; it grants environments ${'a, '.repeat(9000)}a with key patterns *`],
  ])('gives nothing for a sentence outside the grammar (%i %j)', (status, message) => {
    expect(parseRefusal(status, message)).toBeUndefined();
  });
});
