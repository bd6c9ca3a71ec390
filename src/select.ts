// Which secrets a run injects: patterns (-k) and exact keys (--key), then the name and value
// rules. Validation runs over exactly what would be injected, before anything is written.
import { NameRefusedError, PatternUnmatchedError, SecretMissingError } from './errors.js';
import { matchesAny } from './glob.js';
import { assertInjectableName, assertInjectableValue, isShellSetName } from './names.js';
import type { Secrets } from './sources/source.js';

export interface Selection {
  patterns: readonly string[];
  keys: readonly string[];
  allowNames: ReadonlySet<string>;
  /** The config file the patterns come from (its key_patterns), when no -k or --key was given. */
  patternsFrom?: string | undefined;
  /** --allow-empty: a pattern that matches nothing is not an error. */
  allowEmpty: boolean;
  /**
   * Env injection while signals were ignored at start: the child is exec'd by /bin/sh
   * (ignored-signals.ts), which rewrites some variables; secrets of those names are refused.
   */
  throughShell?: readonly NodeJS.Signals[] | undefined;
}

export function selectSecrets(all: Secrets, selection: Selection): Secrets {
  for (const key of selection.keys) {
    if (!all.has(key)) throw new SecretMissingError(key);
  }
  if (!selection.allowEmpty) {
    const names = [...all.keys()];
    // A typo in -k would otherwise run the job with no secrets and exit 0.
    for (const pattern of selection.patterns) {
      if (!names.some((name) => matchesAny([pattern], name))) throw new PatternUnmatchedError(pattern, selection.patternsFrom);
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
  if (selection.throughShell && selection.throughShell.length > 0) {
    for (const name of chosen.keys()) if (isShellSetName(name)) throw shellManagedError(name, selection.throughShell);
  }
  for (const [name, value] of chosen) assertInjectableValue(name, value);
  return chosen;
}

/** Not --allow-name's to waive: sh would print the value or pass the child another one. */
function shellManagedError(name: string, ignored: readonly NodeJS.Signals[]): NameRefusedError {
  return new NameRefusedError(
    'RWS_NAME_PROTECTED',
    `secret name ${name} cannot reach the child unchanged: ${ignored.join(', ')} ${ignored.length === 1 ? 'was' : 'were'} ignored when run-with-secrets started, so the child is started through /bin/sh, which sets ${name} itself`,
    'rename the secret, use --inject-as file or fd, or start run-with-secrets without ignoring signals (not under nohup or as a background job of a script)',
  );
}
