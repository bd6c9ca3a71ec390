// Which values are encrypted (FORMAT.md §3, sops.go shouldBeEncrypted): the test runs over every
// key on the value's path. At most one rule is present; with none, unencrypted_suffix=_unencrypted.
import { printable } from '../printable.js';

export const DEFAULT_UNENCRYPTED_SUFFIX = '_unencrypted';

export type Rule =
  | { readonly kind: 'unencrypted_suffix' | 'encrypted_suffix'; readonly suffix: string }
  | { readonly kind: 'unencrypted_regex' | 'encrypted_regex'; readonly regex: RegExp; readonly source: string };

export const RULE_KINDS = ['unencrypted_suffix', 'encrypted_suffix', 'unencrypted_regex', 'encrypted_regex'] as const;

export function shouldBeEncrypted(rule: Rule, path: readonly string[]): boolean {
  switch (rule.kind) {
    case 'unencrypted_suffix':
      // An empty suffix means "no rule" in sops (the check is skipped), so everything is encrypted.
      return rule.suffix === '' || !path.some((k) => k.endsWith(rule.suffix));
    case 'encrypted_suffix':
      return rule.suffix === '' || path.some((k) => k.endsWith(rule.suffix));
    case 'unencrypted_regex':
      return !path.some((k) => rule.regex.test(k));
    case 'encrypted_regex':
      return path.some((k) => rule.regex.test(k));
  }
}

/**
 * Go's regexp.Match is an unanchored search, as RegExp.test is without the g flag. RE2 syntax
 * that JavaScript does not read (inline flags such as (?i)) makes the file unreadable here
 * rather than silently different; undefined then.
 */
export function compileGoRegex(source: string): RegExp | undefined {
  try {
    return new RegExp(source, 'u');
  } catch {
    return undefined;
  }
}

/** The rule as sops writes it in the metadata, e.g. `unencrypted_suffix: _unencrypted`. */
export function describeRule(rule: Rule): string {
  return `${rule.kind}: ${printable('suffix' in rule ? rule.suffix : rule.source)}`;
}

/** The rule of a file written without one (what createSopsFile writes). */
export const DEFAULT_RULE: Rule = { kind: 'unencrypted_suffix', suffix: DEFAULT_UNENCRYPTED_SUFFIX };

/** The rule, described, when it leaves the top-level `name` unencrypted; else undefined. */
export function ruleLeavingUnencrypted(rule: Rule, name: string): string | undefined {
  return shouldBeEncrypted(rule, [name]) ? undefined : describeRule(rule);
}
