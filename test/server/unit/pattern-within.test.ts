import { describe, expect, it } from 'vitest';
import { globMatch, patternWithin } from '../../../src/glob.js';

describe('patternWithin', () => {
  it.each([
    ['SERVICE_B_*', 'SERVICE_B_*'],
    ['SERVICE_B_KEY', 'SERVICE_B_*'],
    ['SERVICE_B_?', 'SERVICE_B_*'],
    ['SERVICE_B_*_KEY', 'SERVICE_B_*'],
    ['SERVICE_B_**', 'SERVICE_B_*'],
    ['A*B*B', 'A*B'],
    ['?*', '*?'],
    ['*?', '?*'],
    ['A??', 'A?*'],
    ['DB_PASSWORD', 'DB_PASSWORD'],
    ['X', '*'],
    ['*', '*'],
  ])('%s lies within %s', (pattern, grant) => {
    expect(patternWithin(pattern, grant)).toBe(true);
  });

  it.each([
    ['SERVICE_*', 'SERVICE_B_*'],
    ['*', 'SERVICE_B_*'],
    ['SERVICE_B?*', 'SERVICE_B_*'],
    ['SERVICE_B?', 'SERVICE_B_'],
    ['SERVICE_?_*', 'SERVICE_B_*'],
    ['SERVICE_B_*', 'SERVICE_B_?'],
    ['SERVICE_B_*?', 'SERVICE_B_?'],
    ['A*B*', 'A*B'],
    ['*KEY', 'SERVICE_*KEY'],
    ['?', 'A'],
    ['*', '?*'],
    ['A*', 'A?'],
    ['service_b_x', 'SERVICE_B_*'],
    ['SERVICE_B_.*', 'SERVICE_B_*'],
    ['SERVICE_B_[A-Z]', 'SERVICE_B_*'],
    ['', '*'],
  ])('%s does not lie within %s', (pattern, grant) => {
    expect(patternWithin(pattern, grant)).toBe(false);
  });

  // Brute force over a small alphabet: C stands for "any other character". Whenever
  // patternWithin says yes, no string may match the pattern without matching the grant.
  it('never accepts a pattern that matches a name the grant does not (exhaustive, short)', () => {
    const symbols = ['A', 'B', '?', '*'];
    const patterns: string[] = [];
    const grow = (prefix: string, left: number): void => {
      if (prefix) patterns.push(prefix);
      if (left > 0) for (const s of symbols) grow(prefix + s, left - 1);
    };
    grow('', 4);
    const strings: string[] = [''];
    for (let len = 1; len <= 6; len++) {
      for (const s of strings.filter((x) => x.length === len - 1)) for (const c of 'ABC') strings.push(s + c);
    }
    let accepted = 0;
    for (const p of patterns) {
      for (const g of patterns) {
        if (!patternWithin(p, g)) continue;
        accepted++;
        for (const s of strings) {
          if (globMatch(p, s) && !globMatch(g, s)) throw new Error(`${p} within ${g} accepted but ${s} escapes`);
        }
      }
    }
    expect(accepted).toBeGreaterThan(1000);
  });
});
