// Hand-made JWTs for refusal tests: any header, any payload, any HMAC (or none).
import { createHmac } from 'node:crypto';

export const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

export function craft(header: Record<string, unknown>, payload: unknown, options: { secret?: string; hash?: 'sha256' | 'sha384' | 'sha512' | 'none' } = {}): string {
  const input = `${b64(header)}.${b64(payload)}`;
  if (options.hash === 'none') return `${input}.`;
  const signature = createHmac(options.hash ?? 'sha256', options.secret ?? SECRET).update(input).digest('base64url');
  return `${input}.${signature}`;
}

export function goodClaims(now: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(now / 1000);
  return {
    iss: 'secrets-server',
    aud: 'run-with-secrets',
    sub: 'ci-job',
    iat,
    nbf: iat,
    exp: iat + 300,
    jti: 'AAAAAAAAAAAAAAAAAAAAAA',
    scope: { environment: 'production', key_pattern: 'SERVICE_B_*', permissions: ['read'] },
    usage_limit: 3,
    ...overrides,
  };
}

export const GOOD_HEADER = { alg: 'HS256', typ: 'rws-access+jwt' };
