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

/** Puts every run of wildcards in one spelling (`?` first, then at most one `*`): `*?*` → `?*`. */
function canonicalPattern(pattern: string): string {
  return pattern.replace(/[*?]{2,}/g, (run) => {
    const singles = run.replaceAll('*', '');
    return run.includes('*') ? `${singles}*` : singles;
  });
}

/**
 * True only when every name `pattern` can match is also matched by `grant` (a security check:
 * a token's pattern must lie within its API key's grant). The pattern is read as a string of
 * symbols (letters, `?`, `*`); the grant must match that symbol string where a grant `?` stands
 * for one letter or one `?` (never a `*`, which can stand for zero or many characters) and a
 * grant `*` stands for any run of symbols. Whatever this accepts is contained; it may refuse a
 * few exotic pairs that are contained (it is sound, and complete on canonical spellings used in
 * practice), which errs on the side of refusing. Both must be valid patterns.
 */
export function patternWithin(pattern: string, grant: string): boolean {
  if (!isValidPattern(pattern) || !isValidPattern(grant)) return false;
  const p = canonicalPattern(pattern);
  const g = canonicalPattern(grant);
  // within[j] after row i: does g[0..i) cover p[0..j)?
  let within: boolean[] = Array.from({ length: p.length + 1 }, (_, j) => j === 0);
  for (const gc of g) {
    const next: boolean[] = new Array<boolean>(p.length + 1).fill(false);
    if (gc === '*') {
      let seen = false;
      for (let j = 0; j <= p.length; j++) {
        seen ||= within[j] === true;
        next[j] = seen;
      }
    } else {
      for (let j = 1; j <= p.length; j++) {
        const pc = p[j - 1];
        const covers = gc === '?' ? pc !== '*' : pc === gc;
        next[j] = covers && within[j - 1] === true;
      }
    }
    within = next;
  }
  return within[p.length] === true;
}
