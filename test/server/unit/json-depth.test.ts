import { describe, expect, it } from 'vitest';
import { nestsDeeperThan } from '../../../src/server/http/json-depth.js';

describe('nestsDeeperThan', () => {
  it('counts objects and arrays inside one another', () => {
    expect(nestsDeeperThan('{"a":[{"b":[]}]}', 4)).toBe(false);
    expect(nestsDeeperThan('{"a":[{"b":[]}]}', 3)).toBe(true);
    // Siblings are not nesting.
    expect(nestsDeeperThan(`[${'[],'.repeat(1000)}[]]`, 2)).toBe(false);
  });

  it('does not count brackets inside strings, escaped quotes and backslashes included', () => {
    expect(nestsDeeperThan('["[[[[", "\\"[[[[", "\\\\", "{{{{"]', 1)).toBe(false);
    // After an escaped backslash the quote ends the string: what follows is counted.
    expect(nestsDeeperThan('["\\\\", [[]]]', 2)).toBe(true);
  });

  it('scans text that is not JSON, such as an unterminated run of brackets', () => {
    expect(nestsDeeperThan('['.repeat(100_000), 64)).toBe(true);
    expect(nestsDeeperThan('"unterminated [[[[', 1)).toBe(false);
  });
});
