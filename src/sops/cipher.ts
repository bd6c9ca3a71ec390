// The value cipher of sops (FORMAT.md §2, sops:aes/cipher.go): AES-256-GCM, a 32-byte random IV,
// a 16-byte tag, standard padded base64, and the text form ENC[AES256_GCM,data:…,iv:…,tag:…,type:…].
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const DATA_KEY_BYTES = 32;
const IV_BYTES = 32; // sops's nonceSize; GCM accepts it (FORMAT.md §2)
const TAG_BYTES = 16;

/** The types sops writes (§2 "Types"); int64 is what sops < 3.7 wrote for large ints. */
export const VALUE_TYPES = ['str', 'int', 'int64', 'float', 'bool', 'time', 'bytes', 'comment'] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

export interface EncValue {
  readonly data: Buffer;
  readonly iv: Buffer;
  readonly tag: Buffer;
  readonly type: ValueType;
}

// sops parses with ^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]. The fields here are
// restricted to the base64 alphabet, so a value cannot smuggle in a second field.
const ENC_RE = /^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]+),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:([a-z0-9]+)\]$/;
const B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Whether a string is meant as an encrypted value (sops writes nothing else starting so). */
export function looksEncrypted(s: string): boolean {
  return s.startsWith('ENC[');
}

/** Parses ENC[…]; the reason for a failure names the field, never the value. */
export function parseEnc(s: string): EncValue | string {
  const m = ENC_RE.exec(s);
  if (m === null) return 'is not an ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value';
  const [, data, iv, tag, type] = m as unknown as [string, string, string, string, string];
  for (const [name, field] of [['data', data], ['iv', iv], ['tag', tag]] as const) {
    // Go's base64.StdEncoding needs padding; Buffer.from would silently skip bad characters.
    if (!B64_RE.test(field)) return `has a ${name} field that is not padded base64`;
  }
  if (!(VALUE_TYPES as readonly string[]).includes(type)) return `has an unknown type "${type}"`;
  const ivBytes = Buffer.from(iv, 'base64');
  if (ivBytes.length === 0) return 'has an empty iv';
  return { data: Buffer.from(data, 'base64'), iv: ivBytes, tag: Buffer.from(tag, 'base64'), type: type as ValueType };
}

export function formatEnc(v: EncValue): string {
  const b64 = (b: Buffer): string => b.toString('base64');
  return `ENC[AES256_GCM,data:${b64(v.data)},iv:${b64(v.iv)},tag:${b64(v.tag)},type:${v.type}]`;
}

/**
 * Decrypts one value; returns undefined when GCM rejects it (changed data, IV, tag or AAD).
 * Go's gcm.Open takes the last 16 bytes of data‖tag as the tag, so that split is used here too.
 */
export function decryptEnc(key: Uint8Array, v: EncValue, aad: string): Buffer | undefined {
  const sealed = sealedParts(v);
  return sealed === undefined ? undefined : openSealed(key, v.iv, sealed.ciphertext, sealed.tag, Buffer.from(aad, 'utf8'));
}

/** data‖tag split as Go's gcm.Open splits it; undefined when shorter than a tag. */
export function sealedParts(v: EncValue): { ciphertext: Buffer; tag: Buffer } | undefined {
  const sealed = Buffer.concat([v.data, v.tag]);
  if (sealed.length < TAG_BYTES) return undefined;
  return { ciphertext: sealed.subarray(0, sealed.length - TAG_BYTES), tag: sealed.subarray(sealed.length - TAG_BYTES) };
}

/** One AES-256-GCM open of parts already split by sealedParts; undefined when GCM rejects them. */
export function openSealed(key: Uint8Array, iv: Buffer, ciphertext: Buffer, tag: Buffer, aad: Buffer): Buffer | undefined {
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    d.setAAD(aad);
    d.setAuthTag(tag);
    const first = d.update(ciphertext);
    const last = d.final();
    return last.length === 0 ? first : Buffer.concat([first, last]);
  } catch {
    return undefined;
  }
}

/** Encrypts one value; `iv` is passed to reuse the IV of an unchanged value (FORMAT.md §2 "IV reuse"). */
export function encryptEnc(key: Uint8Array, plaintext: Uint8Array, aad: string, type: ValueType, iv: Buffer = randomBytes(IV_BYTES)): EncValue {
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  c.setAAD(Buffer.from(aad, 'utf8'));
  const data = Buffer.concat([c.update(plaintext), c.final()]);
  return { data, iv, tag: c.getAuthTag(), type };
}

/** AAD of a value: its map keys joined by ':' plus a final ':' (FORMAT.md §2 "AAD"). */
export function aadOf(path: readonly string[]): string {
  return `${path.join(':')}:`;
}
