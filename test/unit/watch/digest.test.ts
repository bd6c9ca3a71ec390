import { describe, expect, it } from 'vitest';
import { describeChange, SecretsDigester } from '../../../src/watch/digest.js';

describe('SecretsDigester', () => {
  const digester = new SecretsDigester();

  it('is the same for the same names and values in any order', () => {
    expect(digester.digest(new Map([['A', '1'], ['B', '2']])).whole).toBe(digester.digest(new Map([['B', '2'], ['A', '1']])).whole);
  });

  it('differs when a value, a name or the set changes, including shifts between name and value', () => {
    const base = digester.digest(new Map([['A', '1'], ['B', '2']])).whole;
    for (const other of [new Map([['A', '1'], ['B', '3']]), new Map([['A', '1']]), new Map([['A', '1'], ['B', '2'], ['C', '']]), new Map([['A', '1'], ['C', '2']])]) {
      expect(digester.digest(other).whole).not.toBe(base);
    }
    expect(digester.digest(new Map([['AB', 'C']])).whole).not.toBe(digester.digest(new Map([['A', 'BC']])).whole);
  });

  it('holds no value: keyed per process, so two digesters disagree on the same input', () => {
    // A value no digest's spelling can hold by chance (hex or base64url have no 'z' run like it).
    const secrets = new Map([['PIN', 'pin-zzzz-value']]);
    const one = digester.digest(secrets);
    expect(new SecretsDigester().digest(secrets).whole).not.toBe(one.whole);
    expect(JSON.stringify([...one.names])).not.toContain('pin-zzzz-value');
  });

  it('names what changed, sorted, names only', () => {
    const before = digester.digest(new Map([['A', '1'], ['B', '2'], ['C', '3']]));
    const after = digester.digest(new Map([['A', '1'], ['B', 'changed-secret'], ['D', '4']]));
    expect(describeChange(before, after)).toBe('B changed, C removed, D added');
    expect(describeChange(before, before)).toBe('nothing changed');
    const many = digester.digest(new Map(Array.from({ length: 8 }, (_, index) => [`K${index}`, 'x'])));
    expect(describeChange(before, many)).toBe('A removed, B removed, C removed, K0 added, K1 added and 6 more');
  });
});
