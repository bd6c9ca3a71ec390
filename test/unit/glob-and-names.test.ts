import { describe, expect, it } from 'vitest';
import { globMatch, isValidPattern, matchesAny } from '../../src/glob.js';
import { assertInjectableName, assertInjectableValue, isProtectedName, isValidName } from '../../src/names.js';

describe('globMatch', () => {
  it.each([
    ['SERVICE_B_*', 'SERVICE_B_URL', true],
    ['SERVICE_B_*', 'SERVICE_B_', true],
    ['SERVICE_B_*', 'SERVICE_A_URL', false],
    ['SERVICE_B_*', 'XSERVICE_B_URL', false],
    ['*_KEY', 'API_KEY', true],
    ['*_KEY', 'API_KEYS', false],
    ['KEY?', 'KEY1', true],
    ['KEY?', 'KEY', false],
    ['KEY?', 'KEY12', false],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'aXbY', false],
    ['key', 'KEY', false],
    ['*', '', true],
    ['**', 'anything', true],
  ])('%s ~ %s is %s', (pattern, name, expected) => {
    expect(globMatch(pattern, name)).toBe(expected);
  });

  it('stays fast on pathological patterns (no backtracking blow-up)', () => {
    const pattern = `${'*A'.repeat(50)}B`;
    const name = 'A'.repeat(5000);
    expect(globMatch(pattern, name)).toBe(false);
  });

  it('rejects regular-expression syntax in patterns', () => {
    for (const bad of ['A.*', '(A|B)', 'A[0-9]', 'A+', '^A$', 'A\\d', '', 'A B', 'A/B']) expect(isValidPattern(bad), bad).toBe(false);
    for (const good of ['A*', '*', 'A?B', 'a_b_9']) expect(isValidPattern(good), good).toBe(true);
    expect(matchesAny(['X*', 'Y?'], 'Y1')).toBe(true);
  });
});

describe('names', () => {
  it('accepts variable names and refuses anything else first', () => {
    for (const good of ['A', '_A', 'a1', 'A'.repeat(128)]) expect(isValidName(good)).toBe(true);
    for (const bad of ['', '1A', 'A-B', 'A.B', 'LD_PRELOAD=x', 'A B', 'A\nB', 'Ä', 'A'.repeat(129)]) expect(isValidName(bad), bad).toBe(false);
    expect(() => assertInjectableName('LD_PRELOAD=/x.so', new Set(['LD_PRELOAD=/x.so']))).toThrowError(expect.objectContaining({ code: 'RWS_NAME_INVALID' }));
  });

  it('protects loader, shell, interpreter, tool and trust names, case-insensitively', () => {
    for (const name of ['LD_PRELOAD', 'ld_library_path', 'DYLD_INSERT_LIBRARIES', 'NODE_OPTIONS', 'BASH_ENV', 'ENV', 'IFS', 'PYTHONPATH', 'PERL5OPT', 'RUBYOPT', 'GCONV_PATH', 'GLIBC_TUNABLES', 'BASH_FUNC_x%%', 'HTTPS_PROXY', 'no_proxy', 'GIT_CONFIG_COUNT', 'PATH', 'HOME', 'SSL_CERT_FILE', 'npm_config_registry']) {
      expect(isProtectedName(name), name).toBe(true);
    }
    for (const name of ['DATABASE_URL', 'API_KEY', 'LD', 'PATHS', 'MY_PATH', 'ENVIRONMENT']) expect(isProtectedName(name), name).toBe(false);
  });

  it('lets a protected name through only with --allow-name, but never RWS_*', () => {
    expect(() => assertInjectableName('NODE_OPTIONS', new Set())).toThrowError(expect.objectContaining({ code: 'RWS_NAME_PROTECTED', hint: expect.stringContaining('--allow-name NODE_OPTIONS') }));
    expect(() => assertInjectableName('NODE_OPTIONS', new Set(['NODE_OPTIONS']))).not.toThrow();
    expect(() => assertInjectableName('RWS_API_KEY', new Set(['RWS_API_KEY']))).toThrowError(expect.objectContaining({ code: 'RWS_NAME_PROTECTED' }));
  });

  it('refuses a NUL byte in a value without echoing the value', () => {
    expect(() => assertInjectableValue('K', 'secret\0tail')).toThrowError(expect.objectContaining({ code: 'RWS_VALUE_INVALID', message: expect.not.stringContaining('secret') }));
    expect(() => assertInjectableValue('K', 'fine\n')).not.toThrow();
  });
});
