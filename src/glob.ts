// Key patterns: `*` (any run, possibly empty) and `?` (one character), anchored, case-sensitive.
// Matching is done by hand rather than by building a RegExp, so a pattern can never smuggle
// regular-expression syntax in, and matching is linear-time in practice (no backtracking blowup).

/** Characters a pattern may hold: variable-name characters plus the two wildcards. */
const PATTERN_GRAMMAR = /^[A-Za-z0-9_*?]{1,256}$/;

export function isValidPattern(pattern: string): boolean {
  return PATTERN_GRAMMAR.test(pattern);
}

/** True when `name` matches `pattern` entirely. Classic two-pointer wildcard match, O(n·m) worst case. */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    const pc = pattern[p];
    if (pc === '?' || (pc !== undefined && pc !== '*' && pc === name[n])) {
      p++;
      n++;
    } else if (pc === '*') {
      starP = p++;
      starN = n;
    } else if (starP !== -1) {
      p = starP + 1;
      n = ++starN;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export function matchesAny(patterns: readonly string[], name: string): boolean {
  return patterns.some((pattern) => globMatch(pattern, name));
}
