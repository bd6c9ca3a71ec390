// Building the nodes a writer adds (FORMAT.md §7): encrypted values, plaintext values for keys
// the rule leaves unencrypted, keys, and the metadata block.
import { isMap, isScalar, Pair, YAMLMap, YAMLSeq, type Scalar } from 'yaml';
import { aadOf, encryptEnc, formatEnc, looksEncrypted, parseEnc, decryptEnc } from './cipher.js';
import { invalid } from './errors.js';
import { plainIsString } from './go-yaml-type.js';
import { shouldBeEncrypted, type Rule } from './rules.js';
import { plain, quoted } from './yaml-doc.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A name or value that cannot be written exactly: a lone surrogate has no UTF-8 form. */
export function checkWritable(name: string, value: string | undefined, origin: string): void {
  if (name === 'sops') throw invalid(origin, 'the top-level key sops is reserved for the metadata');
  if (LONE_SURROGATE.test(name)) throw invalid(origin, 'a key contains a lone UTF-16 surrogate and cannot be written as UTF-8');
  if (value !== undefined && LONE_SURROGATE.test(value)) {
    throw invalid(origin, `the value for ${JSON.stringify(name)} contains a lone UTF-16 surrogate and cannot be written as UTF-8`);
  }
}

/** A key go-yaml reads back as this string: plain when that is unambiguous, else double-quoted. */
export function keyNode(name: string): Scalar {
  return /^[A-Za-z0-9_][A-Za-z0-9_.\/-]*$/.test(name) && plainIsString(name) ? plain(name) : quoted(name);
}

/**
 * The node for a top-level string value. An unchanged value keeps its ciphertext, as sops's IV
 * stash does (FORMAT.md §2 "IV reuse"), so rewriting a file changes only what changed.
 */
export function valueNode(name: string, value: string, previous: unknown, rule: Rule, key: Uint8Array): Scalar {
  // Plaintext and empty values are double-quoted so that go-yaml reads them as strings.
  if (!shouldBeEncrypted(rule, [name]) || value === '') return quoted(value);
  const aad = aadOf([name]);
  if (isScalar(previous) && previous.type === 'PLAIN' && typeof previous.value === 'string' && looksEncrypted(previous.value)) {
    const enc = parseEnc(previous.value);
    if (typeof enc !== 'string' && enc.type === 'str') {
      const old = decryptEnc(key, enc, aad);
      const same = old !== undefined && old.equals(Buffer.from(value, 'utf8'));
      old?.fill(0);
      if (same) return previous;
    }
  }
  return plain(formatEnc(encryptEnc(key, Buffer.from(value, 'utf8'), aad, 'str')));
}

export interface NewMetadata {
  readonly age: ReadonlyArray<{ recipient: string; enc: string }>;
  readonly lastModified: string;
  readonly mac: string;
  readonly unencryptedSuffix: string;
  readonly version: string;
}

/** The `sops:` block, keys sorted as sops 3.13 writes them (FORMAT.md §1). */
export function metadataNode(m: NewMetadata): YAMLMap {
  const map = new YAMLMap();
  const seq = new YAMLSeq();
  for (const stanza of m.age) {
    const entry = new YAMLMap();
    const enc = quoted(stanza.enc);
    enc.type = 'BLOCK_LITERAL'; // the armored file as a `|` block, as sops writes it
    entry.items.push(new Pair(plain('recipient'), plain(stanza.recipient)), new Pair(plain('enc'), enc));
    seq.items.push(entry);
  }
  map.items.push(
    new Pair(plain('age'), seq),
    new Pair(plain('lastmodified'), quoted(m.lastModified)),
    new Pair(plain('mac'), plain(m.mac)),
    new Pair(plain('unencrypted_suffix'), plain(m.unencryptedSuffix)),
    new Pair(plain('version'), plain(m.version)),
  );
  return map;
}

/** Sets lastmodified and mac in a copy of an existing `sops:` block, keeping everything else. */
export function restampMetadata(existing: unknown, lastModified: string, mac: string): YAMLMap {
  if (!isMap(existing)) throw new Error('metadata is not a map');
  const map = existing.clone() as YAMLMap;
  for (const [name, node] of [['lastmodified', quoted(lastModified)], ['mac', plain(mac)]] as const) {
    const pair = map.items.find((p) => isScalar(p.key) && p.key.value === name);
    if (pair === undefined) map.items.push(new Pair(plain(name), node));
    else pair.value = node;
  }
  return map;
}
