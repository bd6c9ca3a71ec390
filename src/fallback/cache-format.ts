// The bytes of a fallback cache file. AES-256-GCM with a key derived by HKDF-SHA256 from the API
// key and a salt fresh for every file; the metadata travels in clear, and everything before the
// ciphertext (magic, version, salt, nonce, metadata) is the authenticated data, so editing a date
// or a name breaks the tag. Layout:
//   "RWFB" | version (1 byte) | salt (32) | nonce (12) | metadata length (u32 BE) | metadata JSON
//   | ciphertext | tag (16)
// Nothing here reads a file or a clock: cache-file.ts does the I/O, cache-policy.ts the dates.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { isValidName } from '../names.js';

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('RWFB', 'ascii');
const SALT_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = MAGIC.length + 1 + SALT_BYTES + NONCE_BYTES + 4;
const MAX_METADATA_BYTES = 64 * 1024;
const HKDF_INFO = Buffer.from('run-with-secrets fallback cache v1', 'ascii');
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const META_FIELDS = ['version', 'url', 'environment', 'selection', 'key_id', 'fetched_at', 'not_after'] as const;

export interface CacheSelection {
  patterns: string[];
  keys: string[];
}

export interface CacheMetadata {
  version: number;
  /** The vault's base URL, as the run names it. */
  url: string;
  environment: string;
  selection: CacheSelection;
  /** A fingerprint of the API key (never the key): see keyFingerprint. */
  key_id: string;
  /** ISO 8601 UTC: when this host fetched the secrets. */
  fetched_at: string;
  /** ISO 8601 UTC: the vault's limit, from its batch answer. */
  not_after: string;
}

/** Why bytes are not a cache file this version can open; the caller turns it into RWS_FALLBACK_INVALID. */
export class CacheFormatProblem extends Error {}

function deriveKey(apiKey: string, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(apiKey, 'utf8'), salt, HKDF_INFO, 32));
}

export function sealCache(metadata: CacheMetadata, secrets: ReadonlyMap<string, string>, apiKey: string): Buffer {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const meta = Buffer.from(JSON.stringify(metadata), 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(meta.length);
  const aad = Buffer.concat([MAGIC, Buffer.from([metadata.version]), salt, nonce, length, meta]);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(apiKey, salt), nonce);
  cipher.setAAD(aad);
  const plaintext = Buffer.from(JSON.stringify({ secrets: Object.fromEntries(secrets) }), 'utf8');
  const sealed = Buffer.concat([aad, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  plaintext.fill(0);
  return sealed;
}

/** Whether `head` (a file's first bytes) begins as a copy of any format version does. */
export function beginsAsCache(head: Buffer): boolean {
  return head.subarray(0, MAGIC.length).equals(MAGIC);
}

/** The metadata, read without the key (and so not yet authenticated): for `fallback clean` and messages. */
export function peekMetadata(bytes: Buffer): CacheMetadata {
  return split(bytes).metadata;
}

/** Metadata and secrets, or a CacheFormatProblem: a wrong key, a flipped byte, an edited date. */
export function openCache(bytes: Buffer, apiKey: string): { metadata: CacheMetadata; secrets: Map<string, string> } {
  const { metadata, aad, salt, nonce, body } = split(bytes);
  if (body.length < TAG_BYTES) throw new CacheFormatProblem('it is truncated');
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(apiKey, salt), nonce);
  decipher.setAAD(aad);
  decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new CacheFormatProblem('its authentication tag does not match (edited, damaged, or sealed with another API key)');
  }
  try {
    return { metadata, secrets: parseSecrets(plaintext) };
  } finally {
    plaintext.fill(0);
  }
}

function split(bytes: Buffer): { metadata: CacheMetadata; aad: Buffer; salt: Buffer; nonce: Buffer; body: Buffer } {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) throw new CacheFormatProblem('it is not a run-with-secrets fallback cache');
  const version = bytes[MAGIC.length]!;
  if (version !== FORMAT_VERSION) throw new CacheFormatProblem(`it has format version ${version}; this run-with-secrets reads version ${FORMAT_VERSION}`);
  let offset = MAGIC.length + 1;
  const salt = bytes.subarray(offset, (offset += SALT_BYTES));
  const nonce = bytes.subarray(offset, (offset += NONCE_BYTES));
  const length = bytes.readUInt32BE(offset);
  offset += 4;
  if (length > MAX_METADATA_BYTES || offset + length > bytes.length) throw new CacheFormatProblem('it is truncated');
  const metadata = parseMetadata(bytes.subarray(offset, offset + length));
  if (metadata.version !== version) throw new CacheFormatProblem('its metadata and header disagree on the version');
  offset += length;
  return { metadata, aad: bytes.subarray(0, offset), salt, nonce, body: bytes.subarray(offset) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

function parseMetadata(bytes: Buffer): CacheMetadata {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new CacheFormatProblem('its metadata is not JSON');
  }
  const bad = (what: string): never => {
    throw new CacheFormatProblem(`its metadata ${what}`);
  };
  if (!isPlainObject(value)) return bad('is not an object');
  const fields = Object.keys(value);
  if (fields.length !== META_FIELDS.length || !META_FIELDS.every((field) => Object.hasOwn(value, field))) bad('has other fields than expected');
  const { version, url, environment, selection, key_id: keyId, fetched_at: fetchedAt, not_after: notAfter } = value;
  if (!Number.isSafeInteger(version)) bad('version is not an integer');
  if (typeof url !== 'string' || url.length > 2048) bad('url is not a URL');
  if (typeof environment !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(environment)) bad('environment is not an environment name');
  if (typeof keyId !== 'string' || !/^[0-9a-f]{32}$/.test(keyId)) bad('key_id is not a key fingerprint');
  for (const [name, date] of [['fetched_at', fetchedAt], ['not_after', notAfter]] as const) {
    if (typeof date !== 'string' || !ISO_UTC.test(date) || Number.isNaN(Date.parse(date))) bad(`${name} is not an ISO 8601 UTC time`);
  }
  if (!isPlainObject(selection) || Object.keys(selection).sort().join() !== 'keys,patterns') bad('selection is not {patterns, keys}');
  const lists = selection as { patterns: unknown; keys: unknown };
  const strings = (list: unknown) => Array.isArray(list) && list.length <= 1000 && list.every((item) => typeof item === 'string' && item.length <= 256);
  if (!strings(lists.patterns) || !strings(lists.keys)) bad('selection lists are not lists of names');
  return {
    version: version as number,
    url: url as string,
    environment: environment as string,
    selection: { patterns: [...(lists.patterns as string[])], keys: [...(lists.keys as string[])] },
    key_id: keyId as string,
    fetched_at: fetchedAt as string,
    not_after: notAfter as string,
  };
}

function parseSecrets(plaintext: Buffer): Map<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(plaintext.toString('utf8'));
  } catch {
    throw new CacheFormatProblem('its content is not JSON');
  }
  if (!isPlainObject(value) || Object.keys(value).join() !== 'secrets' || !isPlainObject(value.secrets)) throw new CacheFormatProblem('its content is not {secrets}');
  const secrets = new Map<string, string>();
  for (const [name, secret] of Object.entries(value.secrets)) {
    if (!isValidName(name) || name === '__proto__' || typeof secret !== 'string') throw new CacheFormatProblem('it holds a name or value that is not valid');
    secrets.set(name, secret);
  }
  return secrets;
}
