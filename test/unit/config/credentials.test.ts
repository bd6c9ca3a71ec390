import { describe, expect, it } from 'vitest';
import { checkApiKey, checkToken, resolveCredential } from '../../../src/config/credentials.js';

const KEY = `rws_sk_${'0123456789abcdef'.repeat(2)}`;
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('checkApiKey', () => {
  it('trims surrounding whitespace', () => {
    expect(checkApiKey(`  ${KEY}\n`, 'RWS_API_KEY')).toBe(KEY);
  });

  it.each([
    ['', 'empty'],
    [KEY.toUpperCase(), 'upper case'],
    [`${KEY}0`, 'too long'],
    [KEY.slice(0, -1), 'too short'],
    [`rws_pk_${'0'.repeat(32)}`, 'wrong prefix'],
    [`${KEY.slice(0, 20)} ${KEY.slice(20)}`, 'inner space'],
    [`${KEY}\0`, 'NUL'],
  ])('refuses %j (%s) with the expected format and without echoing it', (value) => {
    expect(() => checkApiKey(value, 'RWS_API_KEY')).toThrowError(expect.objectContaining({ code: 'RWS_CREDENTIAL_INVALID', hint: expect.stringContaining("'rws_sk_' followed by 32 lowercase hex") }));
    try {
      checkApiKey(value, 'RWS_API_KEY');
    } catch (error) {
      if (value.length > 8) expect((error as Error).message).not.toContain(value.trim().slice(7, 20));
    }
  });
});

describe('checkToken', () => {
  it.each([['a.b'], ['a.b.c.d'], ['a.b.c d'], ['a.b.c=='], [`${'a'.repeat(4096)}.b.c`], ['a..c']])('refuses %j', (value) => {
    expect(() => checkToken(value, 'RWS_TOKEN')).toThrowError(expect.objectContaining({ code: 'RWS_CREDENTIAL_INVALID' }));
  });

  it('accepts a compact JWT, trimmed', () => {
    expect(checkToken(`${TOKEN}\n`, 'RWS_TOKEN')).toBe(TOKEN);
  });
});

describe('resolveCredential', () => {
  const base = { tokenFileFlag: undefined, tokenFlag: undefined, configApiKey: undefined, warn: () => undefined };

  it('takes a token before an API key, the environment before the config file', async () => {
    expect(await resolveCredential({ ...base, env: { RWS_TOKEN: TOKEN, RWS_API_KEY: KEY } })).toMatchObject({ kind: 'token', origin: 'RWS_TOKEN' });
    expect(await resolveCredential({ ...base, env: { RWS_API_KEY: KEY }, configApiKey: { value: 'bad', path: '/c' } })).toMatchObject({ kind: 'api-key', origin: 'RWS_API_KEY' });
    expect(await resolveCredential({ ...base, env: {}, configApiKey: { value: KEY, path: '/c' } })).toMatchObject({ kind: 'api-key', origin: 'the config file /c' });
    expect(await resolveCredential({ ...base, env: {} })).toBeUndefined();
  });

  it('warns when a token comes from argv', async () => {
    const warnings: string[] = [];
    await resolveCredential({ ...base, tokenFlag: TOKEN, env: {}, warn: (code) => warnings.push(code) });
    expect(warnings).toEqual(['RWS_TOKEN_IN_ARGV']);
  });
});
