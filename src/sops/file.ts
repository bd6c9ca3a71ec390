// The public object: a SOPS YAML file whose MAC has been verified. It keeps the parsed documents
// and the data key (the server keeps a file open between requests) but never a decrypted value.
import { isScalar, Pair, type Node, type Scalar } from 'yaml';
import { unwrapDataKey } from './age-stanza.js';
import { invalid, SopsError } from './errors.js';
import { nowRfc3339 } from './go-time.js';
import { computeMac, encryptMac, verifyMac } from './mac.js';
import { readMetadata, type SopsMetadata } from './metadata.js';
import { ruleLeavingUnencrypted, shouldBeEncrypted } from './rules.js';
import { topEntries, walkDocuments } from './tree.js';
import { openSealedValue, sealValue, typed, type SealedValue } from './values.js';
import { checkWritable, keyNode, restampMetadata, valueNode } from './write.js';
import { parseDocuments, plain, sopsPair, stringifyDocuments, topMap, type YamlDoc } from './yaml-doc.js';

export interface SopsFile {
  /** Top-level keys of the first document with a scalar value, in file order; never `sops`. */
  readonly names: string[];
  /** Top-level keys whose value is a map, a list or null: never served, but covered by the MAC. */
  readonly skipped: string[];
  /**
   * Names (also in `names`) whose value is not encrypted: written in plain text because the
   * file's rule leaves them so, or empty (sops never encrypts an empty string). Their names are
   * not authenticated (the MAC covers values, not keys; only an encrypted value's AAD binds its
   * name), and an empty value or a plaintext one under mac_only_encrypted adds nothing to the MAC,
   * so anyone who can edit the file can add such a value without any key material. Consumers that
   * serve or inject secrets skip these.
   */
  readonly unprotected: string[];
  /** The file's rule, described, when it would leave the top-level `name` unencrypted. */
  ruleLeavingUnencrypted(name: string): string | undefined;
  /** Decrypts one top-level scalar on demand; the plaintext is not kept. */
  decrypt(name: string): string;
  /** All top-level scalars, in file order. */
  decryptAll(): Map<string, string>;
  /**
   * Returns the text of a new version of the file: `set` values added or replaced at top level,
   * `remove` names deleted; keeps the data key and recipients, keeps the ciphertext of unchanged
   * values, recomputes the MAC and lastmodified.
   */
  update(changes: { set?: Record<string, string>; remove?: string[] }): Promise<string>;
}

interface Parsed {
  readonly docs: YamlDoc[];
  readonly meta: SopsMetadata;
}

function parseSops(text: string, origin: string): Parsed {
  if (typeof text !== 'string') throw invalid(origin, 'is not text');
  const docs = parseDocuments(text, origin);
  const pair = sopsPair(docs[0]!);
  if (pair === undefined) throw invalid(origin, 'has no sops metadata; it is not a SOPS file');
  const meta = readMetadata(pair.value as Node | null, origin);
  walkDocuments(docs, origin, () => {}); // the whole structure is checked before any key is used
  return { docs, meta };
}

function verify({ docs, meta }: Parsed, key: Uint8Array, origin: string): void {
  verifyMac(meta.mac, meta.lastModified, computeMac(docs, meta, key, origin), key, origin);
}

/** Re-opens text this module wrote with the data key it used: what we write must verify. */
export function checkWritten(text: string, key: Uint8Array, origin: string): void {
  verify(parseSops(text, origin), key, origin);
}

/** The indentation of the file, so that an update does not re-indent every line (sops uses 4). */
function detectIndent(text: string): number {
  const m = /^( +)\S/m.exec(text);
  const n = m?.[1]?.length ?? 4;
  return n >= 2 && n <= 8 ? n : 4;
}

export async function openSopsFile(text: string, identities: string[], options: { origin?: string } = {}): Promise<SopsFile> {
  const origin = options.origin ?? 'the SOPS file';
  const parsed = parseSops(text, origin);
  const key = await unwrapDataKey(parsed.meta.age, identities, origin);
  verify(parsed, key, origin);
  return new VerifiedSopsFile(parsed, key, origin, detectIndent(text));
}

/**
 * A served scalar: either written in plain text (served as written; an empty string is never
 * encrypted, FORMAT.md §2), or its ENC[] value parsed once at open: ciphertext, IV, tag, type
 * and AAD, so that each decrypt() costs one AES-GCM open. Never a plaintext of an encrypted value.
 */
interface ScalarEntry {
  readonly node: Scalar;
  readonly sealed: SealedValue | undefined;
}

class VerifiedSopsFile implements SopsFile {
  readonly names: string[] = [];
  readonly skipped: string[] = [];
  readonly unprotected: string[] = [];
  // Private fields stay out of util.inspect and JSON, so the data key is not logged by accident.
  readonly #parsed: Parsed;
  readonly #key: Uint8Array;
  readonly #origin: string;
  readonly #indent: number;
  readonly #scalars = new Map<string, ScalarEntry>();

  constructor(parsed: Parsed, key: Uint8Array, origin: string, indent: number) {
    this.#parsed = parsed;
    this.#key = key;
    this.#origin = origin;
    this.#indent = indent;
    for (const { key: name, value } of topEntries(parsed.docs[0]!, origin)) {
      if (name === 'sops') continue;
      if (!isScalar(value)) {
        this.skipped.push(name);
        continue;
      }
      const v = typed(value, [name], origin);
      if (v.kind === 'null') {
        this.skipped.push(name);
        continue;
      }
      const text = String(value.value);
      // The MAC check above has already opened every encrypted value, so this parse cannot fail
      // for a file that got here; if it ever did, the open fails rather than a later request.
      const sealed = shouldBeEncrypted(parsed.meta.rule, [name]) && text !== '' ? sealValue(text, [name], origin) : undefined;
      // A `type:comment` value is a comment sops stored as a value: not a secret to serve.
      if (sealed?.type === 'comment') {
        this.skipped.push(name);
        continue;
      }
      this.names.push(name);
      if (sealed === undefined) this.unprotected.push(name);
      this.#scalars.set(name, { node: value, sealed });
    }
  }

  ruleLeavingUnencrypted(name: string): string | undefined {
    return ruleLeavingUnencrypted(this.#parsed.meta.rule, name);
  }

  decrypt(name: string): string {
    const entry = this.#scalars.get(name);
    if (entry === undefined) {
      throw new SopsError('RWS_SOPS_KEY_NOT_FOUND', `${this.#origin} has no top-level scalar named ${JSON.stringify(String(name))}`);
    }
    // Unencrypted scalars are served as written; an empty string is never encrypted (FORMAT.md §2).
    if (entry.sealed === undefined) return String(entry.node.value);
    const { plaintext } = openSealedValue(entry.sealed, this.#key, this.#origin);
    const value = plaintext.toString('utf8');
    plaintext.fill(0);
    return value;
  }

  decryptAll(): Map<string, string> {
    return new Map(this.names.map((name) => [name, this.decrypt(name)]));
  }

  async update(changes: { set?: Record<string, string>; remove?: string[] }): Promise<string> {
    const origin = this.#origin;
    const set = new Map<string, string>(Object.entries(changes.set ?? {}));
    const remove = new Set<string>(changes.remove ?? []);
    for (const name of remove) {
      if (typeof name !== 'string') throw invalid(origin, 'a name to remove is not a string');
      checkWritable(name, undefined, origin);
    }
    for (const [name, value] of set) {
      if (typeof value !== 'string') throw invalid(origin, `the new value for ${JSON.stringify(name)} is not a string`);
      checkWritable(name, value, origin);
      if (remove.has(name)) throw invalid(origin, `${JSON.stringify(name)} is both set and removed`);
    }

    const docs = this.#parsed.docs.map((d) => d.clone() as YamlDoc);
    const rule = this.#parsed.meta.rule;
    const kept = topEntries(docs[0]!, origin).filter((e) => !remove.has(e.key));
    for (const [name, value] of set) {
      const existing = kept.find((e) => e.key === name);
      if (existing !== undefined) {
        existing.pair.value = valueNode(name, value, existing.pair.value, rule, this.#key);
      } else {
        // New keys go before the metadata, which sops keeps last.
        const at = kept.findIndex((e) => e.key === 'sops');
        const pair = new Pair(keyNode(name), valueNode(name, value, undefined, rule, this.#key));
        kept.splice(at === -1 ? kept.length : at, 0, { key: name, pair, value: null });
      }
    }
    topMap(docs[0]!).items = kept.map((e) => e.pair);

    const lastModified = nowRfc3339();
    const mac = encryptMac(computeMac(docs, this.#parsed.meta, this.#key, origin), this.#key, lastModified);
    const metadata = restampMetadata(sopsPair(this.#parsed.docs[0]!)!.value, lastModified, mac);
    // sops writes the metadata into every document (FORMAT.md §1 "Multi-document YAML").
    for (const doc of docs) {
      const pair = sopsPair(doc);
      if (pair === undefined) topMap(doc).items.push(new Pair(plain('sops'), metadata.clone()));
      else pair.value = metadata.clone();
    }
    const text = stringifyDocuments(docs, this.#indent);
    checkWritten(text, this.#key, origin);
    return text;
  }
}
