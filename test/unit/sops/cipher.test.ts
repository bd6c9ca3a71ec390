// The ENC[] value format and AES-256-GCM with a 32-byte IV (FORMAT.md §2).
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { aadOf, decryptEnc, encryptEnc, formatEnc, parseEnc } from '../../../src/sops/cipher.js';

const key = randomBytes(32);

describe('ENC[] values', () => {
  test('encrypt, format, parse and decrypt round-trip with a 32-byte IV and a 16-byte tag', () => {
    const enc = encryptEnc(key, Buffer.from('hello'), 'a:b:', 'str');
    const text = formatEnc(enc);
    expect(text).toMatch(/^ENC\[AES256_GCM,data:[A-Za-z0-9+/=]+,iv:[A-Za-z0-9+/=]{44},tag:[A-Za-z0-9+/=]{24},type:str\]$/);
    const parsed = parseEnc(text);
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(parsed.iv).toHaveLength(32);
    expect(parsed.data).toHaveLength(5); // the tagless ciphertext is as long as the plaintext
    expect(decryptEnc(key, parsed, 'a:b:')?.toString()).toBe('hello');
  });

  test('the AAD binds the value to its key path', () => {
    const enc = encryptEnc(key, Buffer.from('v'), aadOf(['db', 'password']), 'str');
    expect(aadOf(['db', 'password'])).toBe('db:password:');
    expect(decryptEnc(key, enc, 'db:password:')?.toString()).toBe('v');
    expect(decryptEnc(key, enc, 'db:user:')).toBeUndefined();
    expect(decryptEnc(randomBytes(32), enc, 'db:password:')).toBeUndefined();
  });

  test('reusing an IV gives the same ciphertext (how unchanged values keep their text)', () => {
    const a = encryptEnc(key, Buffer.from('same'), 'k:', 'str');
    const b = encryptEnc(key, Buffer.from('same'), 'k:', 'str', a.iv);
    expect(formatEnc(b)).toBe(formatEnc(a));
  });

  test('a value split between data and tag at another boundary still opens, as in Go', () => {
    const enc = encryptEnc(key, Buffer.from('abcdef'), 'k:', 'str');
    const sealed = Buffer.concat([enc.data, enc.tag]);
    const moved = { ...enc, data: sealed.subarray(0, 2), tag: sealed.subarray(2) };
    expect(decryptEnc(key, moved, 'k:')?.toString()).toBe('abcdef');
  });

  test.each([
    ['not ENC at all', 'plain'],
    ['another cipher', 'ENC[AES128_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]'],
    ['a missing field', 'ENC[AES256_GCM,data:AAAA,iv:AAAA,type:str]'],
    ['unpadded base64', 'ENC[AES256_GCM,data:AAA,iv:AAAA,tag:AAAA,type:str]'],
    ['non-base64 characters', 'ENC[AES256_GCM,data:AA*A,iv:AAAA,tag:AAAA,type:str]'],
    ['an unknown type', 'ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:uint]'],
    ['trailing text', 'ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]x'],
    ['an empty data field', 'ENC[AES256_GCM,data:,iv:AAAA,tag:AAAA,type:str]'],
  ])('%s is refused with a reason that does not repeat the value', (_what, text) => {
    const r = parseEnc(text);
    expect(typeof r).toBe('string');
    expect(r).not.toContain('AAAA');
  });
});
