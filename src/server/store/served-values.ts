// What of a verified SOPS file the API may serve: top-level values that were encrypted. A
// plaintext or empty value is not (see SopsFile.unprotected): the MAC covers values, not names,
// and an empty value adds nothing to it, so such an entry can be added to a file by anyone who
// can write it, without any key material. Such names are listed by `secret list`, never served.
import { SopsError, type SopsFile } from '../../sops/index.js';
import { isValidName } from '../../names.js';
import type { SecretFile } from './secret-source.js';

export function servedValues(file: SopsFile): SecretFile {
  const unprotected = new Set(file.unprotected);
  const names = file.names.filter((name) => !unprotected.has(name));
  return {
    names,
    decrypt: (name) => {
      if (unprotected.has(name)) throw new SopsError('RWS_SOPS_KEY_NOT_FOUND', 'the value is not encrypted and is never served');
      return file.decrypt(name);
    },
  };
}

/** Why the API will never serve `name` of `file`, or undefined when it will. */
export function neverServedBecause(file: SopsFile, name: string): string | undefined {
  if (file.unprotected.includes(name)) {
    return file.ruleLeavingUnencrypted(name) === undefined ? 'empty value, never encrypted' : `plain text under the file's rule ${file.ruleLeavingUnencrypted(name)}`;
  }
  if (!isValidName(name)) return 'not a valid name ([A-Za-z_][A-Za-z0-9_]*, at most 128)';
  return undefined;
}
