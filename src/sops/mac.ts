// The MAC (FORMAT.md §4): SHA-512 over the hashed form of every leaf of every document in walk
// order, no keys and no separators; uppercase hex, stored encrypted with AAD = lastmodified.
import { createHash, timingSafeEqual } from 'node:crypto';
import { decryptEnc, encryptEnc, formatEnc, parseEnc } from './cipher.js';
import { SopsError, TAMPERED_HINT } from './errors.js';
import { macAad } from './go-time.js';
import { shouldBeEncrypted, type Rule } from './rules.js';
import { walkDocuments } from './tree.js';
import { macBytes } from './values.js';
import type { YamlDoc } from './yaml-doc.js';

/** SHA-256("sops"), absorbed first when mac_only_encrypted is set (sops.go). */
const MAC_ONLY_ENCRYPTED_INIT = Buffer.from('8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69', 'hex');

export interface MacSettings {
  readonly rule: Rule;
  readonly macOnlyEncrypted: boolean;
}

/** Decrypts every value once, hashes it, and drops the plaintext. */
export function computeMac(docs: readonly YamlDoc[], settings: MacSettings, key: Uint8Array, origin: string): string {
  const hash = createHash('sha512');
  if (settings.macOnlyEncrypted) hash.update(MAC_ONLY_ENCRYPTED_INIT);
  walkDocuments(docs, origin, ({ path, node }) => {
    const encrypted = shouldBeEncrypted(settings.rule, path);
    if (settings.macOnlyEncrypted && !encrypted) return;
    const bytes = macBytes(node, path, encrypted, key, origin);
    if (bytes !== null) {
      hash.update(bytes);
      bytes.fill(0);
    }
  });
  return hash.digest('hex').toUpperCase();
}

function mismatch(origin: string, why: string): SopsError {
  return new SopsError('RWS_SOPS_MAC_MISMATCH', `${origin}: ${why}`, {
    hint: TAMPERED_HINT,
  });
}

/** Decrypts the stored MAC and compares it with the computed one. */
export function verifyMac(stored: string | undefined, lastModified: string, computed: string, key: Uint8Array, origin: string): void {
  if (stored === undefined || stored === '') throw mismatch(origin, 'has no MAC');
  const aad = macAad(lastModified);
  if (aad === undefined) throw new SopsError('RWS_SOPS_INVALID', `${origin}: sops.lastmodified is not an RFC 3339 time`);
  const enc = parseEnc(stored);
  if (typeof enc === 'string' || enc.type !== 'str') throw mismatch(origin, 'has a MAC that is not an encrypted string');
  const plain = decryptEnc(key, enc, aad);
  if (plain === undefined) throw mismatch(origin, 'has a MAC that fails its integrity check (MAC or lastmodified changed)');
  const expected = Buffer.from(computed, 'utf8');
  if (plain.length !== expected.length || !timingSafeEqual(plain, expected)) throw mismatch(origin, 'MAC mismatch: the values do not match the stored MAC');
}

/** The stored form of a MAC written at `lastModified` (FORMAT.md §7 step 4). */
export function encryptMac(computed: string, key: Uint8Array, lastModified: string): string {
  const aad = macAad(lastModified);
  if (aad === undefined) throw new SopsError('RWS_SOPS_INVALID', 'lastmodified is not an RFC 3339 time');
  return formatEnc(encryptEnc(key, Buffer.from(computed, 'utf8'), aad, 'str'));
}
