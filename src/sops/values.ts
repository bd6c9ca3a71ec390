// One value of the tree: decrypting it (FORMAT.md §2) and the bytes the MAC takes from it (§4).
import type { Scalar } from 'yaml';
import { aadOf, openSealed, parseEnc, sealedParts, type ValueType } from './cipher.js';
import { hashedForm } from './decrypted-type.js';
import { invalid, SopsError, showPath, TAMPERED_HINT } from './errors.js';
import { goValue, UnsupportedScalar, type GoValue } from './go-yaml-type.js';

export function typed(node: Scalar, path: readonly string[], origin: string): GoValue {
  try {
    return goValue(node);
  } catch (e) {
    if (e instanceof UnsupportedScalar) throw invalid(origin, `the value at ${showPath(path)} is ${e.message}`);
    throw e;
  }
}

export interface Opened {
  readonly type: ValueType;
  /** The plaintext bytes exactly as sops wrote them (e.g. "True" for a bool). */
  readonly plaintext: Buffer;
}

/** Decrypts the ENC[] text found at `path`. The caller zeroes `plaintext` when done with it. */
export function openValue(text: string, path: readonly string[], key: Uint8Array, origin: string): Opened {
  return openSealedValue(sealValue(text, path, origin), key, origin);
}

/**
 * An ENC[] value parsed once, ready to be decrypted many times: ciphertext, IV, tag, type and
 * AAD only (never plaintext). `path` is kept for error messages.
 */
export interface SealedValue {
  readonly path: readonly string[];
  readonly type: ValueType;
  readonly iv: Buffer;
  readonly aad: Buffer;
  /** undefined when data‖tag is shorter than a tag: GCM refuses it when opened. */
  readonly parts: { readonly ciphertext: Buffer; readonly tag: Buffer } | undefined;
}

/** Parses the ENC[] text found at `path`; a malformed value is refused here, naming the field. */
export function sealValue(text: string, path: readonly string[], origin: string): SealedValue {
  const enc = parseEnc(text);
  if (typeof enc === 'string') throw invalid(origin, `the value at ${showPath(path)} ${enc}`);
  return { path: [...path], type: enc.type, iv: enc.iv, aad: Buffer.from(aadOf(path), 'utf8'), parts: sealedParts(enc) };
}

/** Decrypts a sealed value and checks it against its type. The caller zeroes `plaintext`. */
export function openSealedValue(v: SealedValue, key: Uint8Array, origin: string): Opened {
  const plaintext = v.parts === undefined ? undefined : openSealed(key, v.iv, v.parts.ciphertext, v.parts.tag, v.aad);
  if (plaintext === undefined) {
    // GCM authenticates data, IV and the key path: a changed value fails here, before any MAC.
    throw new SopsError('RWS_SOPS_MAC_MISMATCH', `${origin}: the value at ${showPath(v.path)} fails its integrity check (changed, or moved from another key)`, { hint: TAMPERED_HINT });
  }
  const check = hashedForm(v.type, plaintext);
  if (!check.ok) {
    plaintext.fill(0);
    throw invalid(origin, `the value at ${showPath(v.path)} is ${check.reason}`);
  }
  return { type: v.type, plaintext };
}

/**
 * The bytes this leaf adds to the MAC, or null when it adds none (null values and comments).
 * `encrypted` is the file's rule for the path (rules.ts), as in sops's Tree.Decrypt.
 */
export function macBytes(node: Scalar | null, path: readonly string[], encrypted: boolean, key: Uint8Array, origin: string): Buffer | null {
  if (node === null) return null;
  const v = typed(node, path, origin);
  if (v.kind === 'null') return null; // nulls are neither encrypted nor hashed (getsops/sops#828)
  if (!encrypted) return Buffer.from(v.text, 'utf8');
  if (v.kind !== 'str') throw invalid(origin, `the value at ${showPath(path)} should be encrypted but is a plain ${v.kind}`);
  if (v.text === '') return Buffer.alloc(0); // sops never encrypts an empty string (FORMAT.md §2)
  const { type, plaintext } = openValue(v.text, path, key, origin);
  const hashed = hashedForm(type, plaintext);
  const bytes = hashed.ok && hashed.bytes !== null ? Buffer.from(hashed.bytes) : null;
  plaintext.fill(0);
  return bytes;
}
