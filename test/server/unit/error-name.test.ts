import { describe, expect, it } from 'vitest';
import { nameAndCode } from '../../../src/server/error-name.js';

describe('nameAndCode', () => {
  it('names an error by its class and code, never its message', () => {
    const error = Object.assign(new TypeError('postgres://rws:hunter2@db/rws refused value s3cr3t'), { code: 'ECONNREFUSED' });
    expect(nameAndCode(error)).toBe('TypeError ECONNREFUSED');
    expect(nameAndCode(new RangeError('s3cr3t'))).toBe('RangeError');
  });

  it('takes only a string code, and says `otherwise` for what is not an Error', () => {
    expect(nameAndCode(Object.assign(new Error('x'), { code: { toString: () => 's3cr3t' } }))).toBe('Error');
    expect(nameAndCode({ code: 'EPIPE', message: 's3cr3t' }, 'unknown')).toBe('unknown EPIPE');
    expect(nameAndCode('s3cr3t', 'non-error thrown')).toBe('non-error thrown');
    expect(nameAndCode(undefined)).toBe('error');
    expect(nameAndCode(null)).toBe('error');
  });

  it('repeats a name or a code only when it is a word: never a newline, a sentence or a value', () => {
    const renamed = Object.assign(new Error('x'), { name: 'Error\nsecrets-server: forged line s3cr3t' });
    expect(nameAndCode(renamed)).toBe('Error');
    expect(nameAndCode(Object.assign(new Error('x'), { name: 42 }))).toBe('Error');
    expect(nameAndCode(Object.assign(new Error('x'), { code: 'E1\nforged s3cr3t' }))).toBe('Error');
    expect(nameAndCode(Object.assign(new Error('x'), { code: 'password=s3cr3t' }))).toBe('Error');
    expect(nameAndCode(Object.assign(new Error('x'), { code: 'ERR_FS_EISDIR' }))).toBe('Error ERR_FS_EISDIR');
    expect(nameAndCode(Object.assign(new Error('x'), { code: '42P01' }))).toBe('Error 42P01');
  });
});
