// The MAC hashes Go's text form of typed values (FORMAT.md §2, §4); these tables pin the cases
// where the yaml package or JavaScript would differ from go-yaml v3 and Go's strconv.
import { parseAllDocuments, type Scalar } from 'yaml';
import { describe, expect, test } from 'vitest';
import { hashedForm } from '../../../src/sops/decrypted-type.js';
import { formatFloat, parseBool, parseFloat64, parseInt64 } from '../../../src/sops/go-strconv.js';
import { canonicalTime, macAad, nowRfc3339, yamlTimestamp } from '../../../src/sops/go-time.js';
import { goValue, plainIsString, UnsupportedScalar } from '../../../src/sops/go-yaml-type.js';
import { PARSE_OPTIONS } from '../../../src/sops/yaml-doc.js';

/** The go-yaml value of `v: <source>`. */
function go(source: string): ReturnType<typeof goValue> {
  const doc = parseAllDocuments(`v: ${source}\n`, PARSE_OPTIONS as never)[0] as never as { contents: { items: [{ value: Scalar }] } };
  return goValue(doc.contents.items[0].value);
}

describe('go-yaml v3 typing of scalars', () => {
  test.each([
    ['017', 'int', '15'], // YAML 1.1 octal, still read by go-yaml v3
    ['0o17', 'int', '15'],
    ['0x1F', 'int', '31'],
    ['0b101', 'int', '5'],
    ['-0b101', 'int', '-5'],
    ['1_000', 'int', '1000'],
    ['+7', 'int', '7'],
    ['-0', 'int', '0'],
    ['08', 'float', '8'], // not octal, not an int: ParseFloat reads it
    ['1.0', 'float', '1'],
    ['3.14', 'float', '3.14'],
    ['1e3', 'float', '1000'],
    ['1e21', 'float', '1000000000000000000000'],
    ['.5', 'float', '0.5'],
    ['.inf', 'float', '+Inf'],
    ['-.Inf', 'float', '-Inf'],
    ['.NaN', 'float', 'NaN'],
    ['true', 'bool', 'True'],
    ['FALSE', 'bool', 'False'],
    ['2024-01-01', 'time', '2024-01-01T00:00:00Z'],
    ['2024-1-2 3:04:05.500', 'time', '2024-01-02T03:04:05.5Z'],
    ['2001-12-14t21:59:43.10-05:00', 'time', '2001-12-14T21:59:43.1-05:00'],
    ['2024-01-01T00:00:00+00:00', 'time', '2024-01-01T00:00:00Z'],
  ])('plain %s is %s %s', (source, kind, text) => {
    expect(go(source)).toEqual({ kind, text });
  });

  test.each(['yes', 'no', 'on', 'off', 'y', 'hello', '1e400', '2024-02-30', '0x', '1.2.3', '<<', 'ENC[AES256_GCM,data:x]', '12:30'])(
    'plain %s stays a string',
    (source) => {
      expect(go(source)).toEqual({ kind: 'str', text: source });
    },
  );

  test.each(['~', 'null', 'Null', 'NULL', ''])('plain %j is null', (source) => {
    expect(go(source)).toEqual({ kind: 'null' });
  });

  test.each(['"017"', "'true'", '"2024-01-01"', '!!str 5', '|\n  7'])('quoted, block or !!str %s is a string', (source) => {
    expect(go(source).kind).toBe('str');
  });

  test('explicit core tags are honoured or refused', () => {
    expect(go('!!int "5"')).toEqual({ kind: 'int', text: '5' });
    expect(go('!!float 5')).toEqual({ kind: 'float', text: '5' });
    expect(() => go('!!int abc')).toThrow(UnsupportedScalar);
    expect(() => go('!custom x')).toThrow(UnsupportedScalar);
  });

  test('an integer that only fits uint64 cannot be walked by sops', () => {
    expect(() => go('9223372036854775808')).toThrow(UnsupportedScalar);
    expect(go('9223372036854775807')).toEqual({ kind: 'int', text: '9223372036854775807' });
    expect(go('-9223372036854775808')).toEqual({ kind: 'int', text: '-9223372036854775808' });
    expect(go('99999999999999999999')).toEqual({ kind: 'float', text: '100000000000000000000' });
  });

  test('plainIsString tells which keys may be written unquoted', () => {
    expect(plainIsString('DB_PASSWORD')).toBe(true);
    for (const s of ['true', '123', 'null', '', '2024-01-01', '1_0', '~']) expect(plainIsString(s)).toBe(false);
  });
});

describe('Go strconv', () => {
  test.each([
    [0.1 + 0.2, '0.30000000000000004'],
    [1e21, '1000000000000000000000'],
    [1.5e-7, '0.00000015'],
    [-2.5, '-2.5'],
    [-0, '-0'],
    [123456789012345680000, '123456789012345680000'],
    [5e-324, `0.${'0'.repeat(323)}5`],
  ])('FormatFloat(%s, f, -1) = %s', (f, s) => {
    expect(formatFloat(f)).toBe(s);
  });

  test('ParseInt, ParseFloat and ParseBool follow Go', () => {
    expect(parseInt64('0x10', 0)).toBe(16n);
    expect(parseInt64('010', 0)).toBe(8n);
    expect(parseInt64('010', 10)).toBe(10n);
    expect(parseInt64(' 1', 10)).toBeUndefined();
    expect(parseInt64('9223372036854775808', 10)).toBeUndefined();
    expect(parseFloat64('Inf')).toBe(Infinity);
    expect(parseFloat64('-infinity')).toBe(-Infinity);
    expect(parseFloat64('-NaN')).toBeUndefined();
    expect(parseFloat64('1e400')).toBeUndefined();
    expect(parseFloat64('0x1p-2')).toBeUndefined(); // hex floats are not supported here
    expect(parseBool('t')).toBe(true);
    expect(parseBool('0')).toBe(false);
    expect(parseBool('yes')).toBeUndefined();
  });

  test.each([
    ['int', '+7', '7'],
    ['int', '007', '7'],
    ['float', '3.140', '3.14'],
    ['float', '1e21', '1000000000000000000000'],
    ['bool', 'true', 'True'],
    ['bool', 'F', 'False'],
    ['time', '2024-01-01T10:00:00.120000000+02:00', '2024-01-01T10:00:00.12+02:00'],
    ['str', ' as is ', ' as is '],
  ] as const)('a decrypted %s %j hashes as %j', (type, plaintext, hashed) => {
    const r = hashedForm(type, Buffer.from(plaintext));
    expect(r.ok && r.bytes?.toString()).toBe(hashed);
  });

  test('invalid decrypted values and comments', () => {
    expect(hashedForm('int', Buffer.from('7.5')).ok).toBe(false);
    expect(hashedForm('bool', Buffer.from('yes')).ok).toBe(false);
    expect(hashedForm('time', Buffer.from('yesterday')).ok).toBe(false);
    expect(hashedForm('comment', Buffer.from(' a comment'))).toEqual({ ok: true, bytes: null });
  });
});

describe('Go time', () => {
  test('the MAC AAD drops fractions and writes a zero offset as Z', () => {
    expect(macAad('2024-03-25T22:08:10Z')).toBe('2024-03-25T22:08:10Z');
    expect(macAad('2024-03-25T22:08:10.123456Z')).toBe('2024-03-25T22:08:10Z');
    expect(macAad('2024-03-25T22:08:10+00:00')).toBe('2024-03-25T22:08:10Z');
    expect(macAad('2024-03-25T22:08:10-07:30')).toBe('2024-03-25T22:08:10-07:30');
    expect(macAad('2024-3-25T22:08:10Z')).toBeUndefined();
    expect(macAad('2024-13-25T22:08:10Z')).toBeUndefined();
  });

  test('RFC3339Nano canonical form and yaml timestamps', () => {
    expect(canonicalTime('2024-02-29T00:00:00.000Z')).toBe('2024-02-29T00:00:00Z');
    expect(canonicalTime('2023-02-29T00:00:00Z')).toBeUndefined();
    expect(yamlTimestamp('2024-01-01 00:00:00')).toBe('2024-01-01T00:00:00Z');
    expect(yamlTimestamp('2001-12-14 21:59:43.10 -5')).toBeUndefined();
    expect(nowRfc3339(new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)))).toBe('2025-01-02T03:04:05Z');
  });
});
