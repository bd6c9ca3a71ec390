// Writing a new flat file (FORMAT.md §7): a fresh data key, every value a `str` (plaintext only
// for names ending in _unencrypted, as the default rule says), one armored age file per
// recipient, the MAC, 4-space indent like sops.
import { randomBytes } from 'node:crypto';
import { Document, Pair, YAMLMap } from 'yaml';
import { wrapDataKey } from './age-stanza.js';
import { DATA_KEY_BYTES } from './cipher.js';
import { invalid } from './errors.js';
import { checkWritten } from './file.js';
import { nowRfc3339 } from './go-time.js';
import { computeMac, encryptMac } from './mac.js';
import { DEFAULT_UNENCRYPTED_SUFFIX, type Rule } from './rules.js';
import { checkWritable, keyNode, metadataNode, valueNode } from './write.js';
import { PARSE_OPTIONS, stringifyDocuments, type YamlDoc } from './yaml-doc.js';

/** Any semver works; sops compares it only in `edit` and for an old KMS bug (FORMAT.md §7). */
export const WRITTEN_VERSION = '3.9.0';
const ORIGIN = 'the new SOPS file';

export async function createSopsFile(values: Record<string, string>, recipients: string[]): Promise<string> {
  if (!Array.isArray(recipients) || recipients.length === 0) {
    throw invalid(ORIGIN, 'needs at least one age recipient', 'pass the age1… public key of whoever must open it');
  }
  const entries = Object.entries(values);
  for (const [name, value] of entries) {
    if (typeof value !== 'string') throw invalid(ORIGIN, `the value for ${JSON.stringify(name)} is not a string`);
    checkWritable(name, value, ORIGIN);
  }
  const dataKey = randomBytes(DATA_KEY_BYTES);
  const rule: Rule = { kind: 'unencrypted_suffix', suffix: DEFAULT_UNENCRYPTED_SUFFIX };
  const age = [];
  for (const recipient of recipients) {
    age.push({ recipient: String(recipient), enc: await wrapDataKey(dataKey, String(recipient)) });
  }

  const doc = new Document(null, PARSE_OPTIONS as never) as unknown as YamlDoc;
  const top = new YAMLMap();
  for (const [name, value] of entries) top.items.push(new Pair(keyNode(name), valueNode(name, value, undefined, rule, dataKey)));
  doc.contents = top as never;

  const lastModified = nowRfc3339();
  const mac = encryptMac(computeMac([doc], { rule, macOnlyEncrypted: false }, dataKey, ORIGIN), dataKey, lastModified);
  top.items.push(new Pair(keyNode('sops'), metadataNode({
    age, lastModified, mac, unencryptedSuffix: DEFAULT_UNENCRYPTED_SUFFIX, version: WRITTEN_VERSION,
  })));
  const text = stringifyDocuments([doc], 4);
  checkWritten(text, dataKey, ORIGIN);
  dataKey.fill(0);
  return text;
}
