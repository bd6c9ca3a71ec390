import { describe, expect, it } from 'vitest';
import { HttpError } from '../../../src/server/http/http-error.js';
import { signToken, verifyToken } from '../../../src/server/auth/tokens.js';
import { craft, GOOD_HEADER, goodClaims, SECRET } from '../helpers/jwt.js';

const key = new TextEncoder().encode(SECRET);
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const now = new Date(NOW);

async function refusal(token: string, at = now): Promise<string> {
  try {
    await verifyToken(key, token, at);
  } catch (error) {
    expect(error).toBeInstanceOf(HttpError);
    expect((error as HttpError).status).toBe(401);
    // RFC 6750 §3: every token refused (sent, and not good) is invalid_token.
    expect((error as HttpError).headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    return (error as HttpError).code;
  }
  throw new Error('token was accepted');
}

describe('verifyToken', () => {
  it('accepts a well-formed token and returns exactly its claims', async () => {
    const claims = await verifyToken(key, craft(GOOD_HEADER, goodClaims(NOW)), now);
    expect(claims).toEqual({
      sub: 'ci-job',
      jti: 'AAAAAAAAAAAAAAAAAAAAAA',
      iat: NOW / 1000,
      exp: NOW / 1000 + 300,
      scope: { environment: 'production', key_pattern: 'SERVICE_B_*', permissions: ['read'] },
      usage_limit: 3,
    });
  });

  it('round-trips what signToken makes', async () => {
    const scope = { environment: 'staging', key_pattern: 'DB_*', permissions: ['read'] as ['read'] };
    const { token, claims } = await signToken(key, { subject: 'me', scope, ttlMinutes: 5, usageLimit: null }, now);
    expect(await verifyToken(key, token, now)).toEqual(claims);
    expect(claims.usage_limit).toBeNull();
  });

  const claims = goodClaims(NOW);
  const cases: Array<[string, string]> = [
    ['alg none', craft({ alg: 'none', typ: GOOD_HEADER.typ }, claims, { hash: 'none' })],
    ['alg none with an HS256 signature', craft({ alg: 'none', typ: GOOD_HEADER.typ }, claims)],
    ['HS384', craft({ alg: 'HS384', typ: GOOD_HEADER.typ }, claims, { hash: 'sha384' })],
    ['HS512', craft({ alg: 'HS512', typ: GOOD_HEADER.typ }, claims, { hash: 'sha512' })],
    ['bad signature', craft(GOOD_HEADER, claims, { secret: 'another-secret-0123456789abcdef0123456789' })],
    ['crit header', craft({ ...GOOD_HEADER, crit: ['exp'] }, claims)],
    ['jwk header', craft({ ...GOOD_HEADER, jwk: { kty: 'oct', k: 'AAAA' } }, claims)],
    ['jku header', craft({ ...GOOD_HEADER, jku: 'https://evil.example/keys' }, claims)],
    ['x5u header', craft({ ...GOOD_HEADER, x5u: 'https://evil.example/cert' }, claims)],
    ['kid header', craft({ ...GOOD_HEADER, kid: '../../jwt-secret' }, claims)],
    ['b64 header', craft({ ...GOOD_HEADER, b64: false, crit: ['b64'] }, claims)],
    ['no typ', craft({ alg: 'HS256' }, claims)],
    ['typ JWT', craft({ alg: 'HS256', typ: 'JWT' }, claims)],
    ['typ spelled with application/', craft({ alg: 'HS256', typ: 'application/rws-access+jwt' }, claims)],
    ['wrong issuer', craft(GOOD_HEADER, { ...claims, iss: 'someone-else' })],
    ['wrong audience', craft(GOOD_HEADER, { ...claims, aud: 'another-service' })],
    ['audience as a list', craft(GOOD_HEADER, { ...claims, aud: ['run-with-secrets'] })],
    ['extra claim', craft(GOOD_HEADER, { ...claims, admin: true })],
    ['extra scope key', craft(GOOD_HEADER, { ...claims, scope: { ...(claims.scope as object), extra: 1 } })],
    ['__proto__ claim', craft(GOOD_HEADER, JSON.parse(JSON.stringify(claims).replace('{', '{"__proto__":{"admin":true},')))],
    ['__proto__ in scope', craft(GOOD_HEADER, JSON.parse(JSON.stringify(claims).replace('"scope":{', '"scope":{"__proto__":{"x":1},')))],
    ['write permission', craft(GOOD_HEADER, { ...claims, scope: { ...(claims.scope as object), permissions: ['read', 'write'] } })],
    ['non-integer iat', craft(GOOD_HEADER, { ...claims, iat: (claims.iat as number) + 0.5 })],
    ['non-integer exp', craft(GOOD_HEADER, { ...claims, exp: (claims.exp as number) + 0.5 })],
    ['string exp', craft(GOOD_HEADER, { ...claims, exp: String(claims.exp) })],
    ['lifetime over the maximum TTL', craft(GOOD_HEADER, { ...claims, exp: (claims.iat as number) + 61 * 60 })],
    ['nbf after exp', craft(GOOD_HEADER, { ...claims, nbf: (claims.exp as number) + 1 })],
    ['usage_limit 0', craft(GOOD_HEADER, { ...claims, usage_limit: 0 })],
    ['usage_limit negative', craft(GOOD_HEADER, { ...claims, usage_limit: -1 })],
    ['usage_limit fractional', craft(GOOD_HEADER, { ...claims, usage_limit: 1.5 })],
    ['usage_limit string', craft(GOOD_HEADER, { ...claims, usage_limit: '10' })],
    ['key_pattern with regex syntax', craft(GOOD_HEADER, { ...claims, scope: { ...(claims.scope as object), key_pattern: '.*' } })],
    ['key_pattern with a class', craft(GOOD_HEADER, { ...claims, scope: { ...(claims.scope as object), key_pattern: 'A[B-Z]' } })],
    ['environment with a slash', craft(GOOD_HEADER, { ...claims, scope: { ...(claims.scope as object), environment: '../x' } })],
    ['short jti', craft(GOOD_HEADER, { ...claims, jti: 'x' })],
    ['empty subject', craft(GOOD_HEADER, { ...claims, sub: '' })],
    ['payload is an array', craft(GOOD_HEADER, [claims])],
  ];
  for (const claim of ['iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'scope']) {
    const { [claim]: _dropped, ...rest } = claims;
    cases.push([`missing ${claim}`, craft(GOOD_HEADER, rest)]);
  }

  it.each(cases)('refuses %s', async (_name, token) => {
    expect(await refusal(token)).toBe('RWS_AUTH_FAILED');
  });

  it('refuses an expired token (beyond the 30 s skew) with RWS_TOKEN_EXPIRED', async () => {
    const token = craft(GOOD_HEADER, claims);
    expect(await refusal(token, new Date(NOW + 300_000 + 31_000))).toBe('RWS_TOKEN_EXPIRED');
    await expect(verifyToken(key, token, new Date(NOW + 300_000 + 29_000))).resolves.toBeDefined();
  });

  it('refuses a token that is not yet valid (beyond the 30 s skew)', async () => {
    const future = goodClaims(NOW + 120_000);
    expect(await refusal(craft(GOOD_HEADER, future))).toBe('RWS_AUTH_FAILED');
    await expect(verifyToken(key, craft(GOOD_HEADER, goodClaims(NOW + 20_000)), now)).resolves.toBeDefined();
  });

  it('refuses every other spelling of a good token', async () => {
    const token = craft(GOOD_HEADER, claims);
    const [h, p, s] = token.split('.') as [string, string, string];
    const last = s.at(-1) as string;
    // Same bytes, different last base64url character (unused low bits set).
    const sibling = 'AEIMQUYcgkosw048'.includes(last) ? String.fromCharCode(last.charCodeAt(0) + 1) : last;
    for (const variant of [`${token}\n`, `${token} `, ` ${token}`, `${h}.${p}.${s}=`, `${h}.${p} .${s}`, `${h}.${p}.${s.slice(0, -1)}${sibling}`, `${h}..${p}.${s}`]) {
      if (variant === token) continue;
      expect(await refusal(variant)).toBe('RWS_AUTH_FAILED');
    }
  });

  it('refuses tokens of 4 KiB and more before parsing them', async () => {
    const big = craft(GOOD_HEADER, { ...claims, sub: 'x'.repeat(250), pad: 'y'.repeat(4000) });
    expect(big.length).toBeGreaterThan(4096);
    expect(await refusal(big)).toBe('RWS_AUTH_FAILED');
  });
});

describe('TokenAuthority', () => {
  it('remembers a verified token but still refuses it once expired', async () => {
    const { TokenAuthority } = await import('../../../src/server/auth/tokens.js');
    const authority = new TokenAuthority(key);
    const token = craft(GOOD_HEADER, goodClaims(NOW));
    expect((await authority.verify(token, now)).jti).toBe('AAAAAAAAAAAAAAAAAAAAAA');
    expect((await authority.verify(token, new Date(NOW + 60_000))).jti).toBe('AAAAAAAAAAAAAAAAAAAAAA');
    await expect(authority.verify(token, new Date(NOW + 300_000 + 31_000))).rejects.toMatchObject({ code: 'RWS_TOKEN_EXPIRED' });
    await expect(authority.verify(`${token}\n`, now)).rejects.toMatchObject({ code: 'RWS_AUTH_FAILED' });
  });

  it('remembers a token by all of it: its signature on other claims is verified, and refused', async () => {
    const { TokenAuthority } = await import('../../../src/server/auth/tokens.js');
    const authority = new TokenAuthority(key);
    const token = craft(GOOD_HEADER, goodClaims(NOW));
    await authority.verify(token, now);
    expect(authority.isKnown(token, now)).toBe(true);
    // The remembered token's signature pasted onto wider claims (the cache is keyed by the signature).
    const signature = token.slice(token.lastIndexOf('.') + 1);
    const wider = craft(GOOD_HEADER, { ...goodClaims(NOW), usage_limit: null, scope: { environment: 'production', key_pattern: '*', permissions: ['read'] } });
    const forged = `${wider.slice(0, wider.lastIndexOf('.'))}.${signature}`;
    expect(authority.isKnown(forged, now)).toBe(false);
    await expect(authority.verify(forged, now)).rejects.toMatchObject({ code: 'RWS_AUTH_FAILED' });
    // And the real one is still remembered as it was.
    expect((await authority.verify(token, now)).scope.key_pattern).toBe('SERVICE_B_*');
  });

});
