// What of a verified SOPS file the API may serve: top-level values that were encrypted. A
// plaintext or empty value is not (see SopsFile.unprotected): the MAC covers values, not names,
// and an empty value adds nothing to it, so such an entry can be added to a file by anyone who
// can write it, without any key material. Such names are listed by `secret list`, never served.
//
// A served value is opened (AES-GCM) the first time it is asked for and then kept masked: XOR
// with a random pad of its own, made then. Memory never holds it in the clear between requests,
// as before, but a request costs a XOR instead of an AES-GCM open (about a tenth of the time).
// Both forms need two things from this process's memory to read a value (pad and masked bytes,
// or data key and ciphertext); the file's data key still sits beside them either way, so the
// mask gives up nothing the cipher held. One thing it does not do: GCM checked its tag on every
// read, so memory corrupted in place failed closed; a corrupted mask is served as it is (the
// file's MAC and each value's tag were checked when it was opened).
import { randomFillSync } from 'node:crypto';
import { SopsError, type SopsFile } from '../../sops/index.js';
import { isValidName } from '../../names.js';
import type { SecretFile } from './secret-source.js';

interface Masked {
  readonly masked: Buffer;
  readonly pad: Buffer;
}

export function servedValues(file: SopsFile): SecretFile {
  const unprotected = new Set(file.unprotected);
  const names = file.names.filter((name) => !unprotected.has(name));
  const kept = new Map<string, Masked>();
  return {
    names,
    decrypt: (name) => {
      const found = kept.get(name);
      if (found !== undefined) return unmask(found);
      if (unprotected.has(name)) throw new SopsError('RWS_SOPS_KEY_NOT_FOUND', 'the value is not encrypted and is never served');
      const value = file.decrypt(name);
      kept.set(name, mask(value));
      return value;
    },
  };
}

function mask(value: string): Masked {
  const plain = Buffer.from(value, 'utf8');
  const pad = randomFillSync(Buffer.alloc(plain.length));
  const masked = Buffer.alloc(plain.length);
  for (let i = 0; i < plain.length; i++) masked[i] = (plain[i] as number) ^ (pad[i] as number);
  plain.fill(0);
  return { masked, pad };
}

function unmask({ masked, pad }: Masked): string {
  const plain = Buffer.alloc(masked.length);
  for (let i = 0; i < masked.length; i++) plain[i] = (masked[i] as number) ^ (pad[i] as number);
  const value = plain.toString('utf8');
  plain.fill(0);
  return value;
}

/** Why the API will never serve `name` of `file`, or undefined when it will. */
export function neverServedBecause(file: SopsFile, name: string): string | undefined {
  if (file.unprotected.includes(name)) {
    return file.ruleLeavingUnencrypted(name) === undefined ? 'empty value, never encrypted' : `plain text under the file's rule ${file.ruleLeavingUnencrypted(name)}`;
  }
  if (!isValidName(name)) return 'not a valid name ([A-Za-z_][A-Za-z0-9_]*, at most 128)';
  return undefined;
}
