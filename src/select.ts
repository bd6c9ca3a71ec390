// Which secrets a run injects: patterns (-k) and exact keys (--key), then the name and value
// rules. Validation runs over exactly what would be injected, before anything is written.
import { PatternUnmatchedError, SecretMissingError } from './errors.js';
import { matchesAny } from './glob.js';
import { assertInjectableName, assertInjectableValue } from './names.js';
import type { Secrets } from './sources/source.js';

export interface Selection {
  patterns: readonly string[];
  keys: readonly string[];
  allowNames: ReadonlySet<string>;
  /** --allow-empty: a pattern that matches nothing is not an error. */
  allowEmpty: boolean;
}

export function selectSecrets(all: Secrets, selection: Selection): Secrets {
  for (const key of selection.keys) {
    if (!all.has(key)) throw new SecretMissingError(key);
  }
  if (!selection.allowEmpty) {
    const names = [...all.keys()];
    // A typo in -k would otherwise run the job with no secrets and exit 0.
    for (const pattern of selection.patterns) {
      if (!names.some((name) => matchesAny([pattern], name))) throw new PatternUnmatchedError(pattern);
    }
  }
  const everything = selection.patterns.length === 0 && selection.keys.length === 0;
  const chosen: Secrets = new Map();
  for (const [name, value] of all) {
    if (everything || selection.keys.includes(name) || matchesAny(selection.patterns, name)) {
      chosen.set(name, value);
    }
  }
  // Names first: an invalid name must be refused before it can be mistaken for anything else.
  for (const name of chosen.keys()) assertInjectableName(name, selection.allowNames);
  for (const [name, value] of chosen) assertInjectableValue(name, value);
  return chosen;
}
