// The `sops:` block of the first document (FORMAT.md §1): age stanzas, lastmodified, mac, the
// encryption rule and mac_only_encrypted. Everything else (pgp, kms, …) is kept but not used.
import { isMap, isScalar, isSeq, type Node, type YAMLMap } from 'yaml';
import { invalid } from './errors.js';
import { DEFAULT_UNENCRYPTED_SUFFIX, RULE_KINDS, compileGoRegex, type Rule } from './rules.js';

export interface AgeStanza {
  readonly recipient: string;
  readonly enc: string;
}

export interface SopsMetadata {
  readonly age: readonly AgeStanza[];
  readonly lastModified: string;
  readonly mac: string | undefined;
  readonly macOnlyEncrypted: boolean;
  readonly rule: Rule;
}

function field(map: YAMLMap, name: string): unknown {
  for (const pair of map.items) {
    if (isScalar(pair.key) && pair.key.value === name) return pair.value;
  }
  return undefined;
}

/** A scalar's text, or undefined when absent or null (older files write `kms: []`, JSON writes null). */
function text(node: unknown, origin: string, name: string): string | undefined {
  if (node === undefined || node === null) return undefined;
  if (!isScalar(node)) throw invalid(origin, `sops.${name} is not a scalar`);
  const s = String(node.value);
  return node.type === 'PLAIN' && ['', '~', 'null', 'Null', 'NULL'].includes(s) ? undefined : s;
}

function ageStanzas(node: unknown, origin: string, where: string): AgeStanza[] {
  if (node === undefined || node === null || (isScalar(node) && text(node, origin, where) === undefined)) return [];
  if (!isSeq(node)) throw invalid(origin, `${where} is not a list`);
  return node.items.map((item, i) => {
    if (!isMap(item)) throw invalid(origin, `${where}[${i}] is not a map`);
    const recipient = text(field(item, 'recipient'), origin, `${where}[${i}].recipient`);
    const enc = text(field(item, 'enc'), origin, `${where}[${i}].enc`);
    if (recipient === undefined || enc === undefined) throw invalid(origin, `${where}[${i}] needs recipient and enc`);
    return { recipient, enc };
  });
}

function readRule(map: YAMLMap, origin: string): Rule {
  for (const unsupported of ['unencrypted_comment_regex', 'encrypted_comment_regex']) {
    if (text(field(map, unsupported), origin, unsupported) !== undefined) {
      throw invalid(origin, `sops.${unsupported} is not supported`, 'rewrite the file with a key-based rule such as encrypted_regex');
    }
  }
  const present = RULE_KINDS.flatMap((kind) => {
    const value = text(field(map, kind), origin, kind);
    // Go reads an empty string as an absent field.
    return value === undefined || value === '' ? [] : [[kind, value] as const];
  });
  if (present.length > 1) throw invalid(origin, `sops metadata has more than one encryption rule (${present.map(([k]) => k).join(', ')})`);
  const [kind, value] = present[0] ?? ['unencrypted_suffix', DEFAULT_UNENCRYPTED_SUFFIX];
  if (kind === 'unencrypted_suffix' || kind === 'encrypted_suffix') return { kind, suffix: value };
  const regex = compileGoRegex(value);
  if (regex === undefined) throw invalid(origin, `sops.${kind} is not a regular expression this reader understands`);
  return { kind, regex, source: value };
}

function readBool(node: unknown, origin: string, name: string): boolean {
  const s = text(node, origin, name);
  if (s === undefined || ['false', 'False', 'FALSE'].includes(s)) return false;
  if (['true', 'True', 'TRUE'].includes(s)) return true;
  throw invalid(origin, `sops.${name} is not a boolean`);
}

function readAge(map: YAMLMap, origin: string): AgeStanza[] {
  const groups = field(map, 'key_groups');
  if (groups !== undefined && groups !== null && isSeq(groups) && groups.items.length > 0) {
    // Several groups split the data key with Shamir's scheme (FORMAT.md §6), which is not supported.
    if (groups.items.length > 1) throw invalid(origin, 'sops key_groups with more than one group (Shamir) are not supported');
    const group = groups.items[0];
    if (!isMap(group)) throw invalid(origin, 'sops.key_groups[0] is not a map');
    return ageStanzas(field(group, 'age'), origin, 'sops.key_groups[0].age');
  }
  return ageStanzas(field(map, 'age'), origin, 'sops.age');
}

export function readMetadata(node: Node | null, origin: string): SopsMetadata {
  if (!isMap(node)) throw invalid(origin, 'the sops metadata is not a map');
  const lastModified = text(field(node, 'lastmodified'), origin, 'lastmodified');
  if (lastModified === undefined) throw invalid(origin, 'sops.lastmodified is missing');
  return {
    age: readAge(node, origin),
    lastModified,
    mac: text(field(node, 'mac'), origin, 'mac'),
    macOnlyEncrypted: readBool(field(node, 'mac_only_encrypted'), origin, 'mac_only_encrypted'),
    rule: readRule(node, origin),
  };
}
