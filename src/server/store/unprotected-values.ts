// Secret edits (`secret set`/`import`, and PUT over the admin API) never write a value that would be stored unencrypted: the
// file's sops rule (`unencrypted_suffix`, `encrypted_regex`, …) may leave a name in plain text,
// and an empty value is never encrypted. Such a value would be readable in the file, not
// protected by the MAC, and never served; before, it was written with no warning.
import { RwsError } from '../../errors.js';
import { DEFAULT_RULE, ruleLeavingUnencrypted, type SopsFile } from '../../sops/index.js';

export class UnprotectedValueError extends RwsError {}

/** Checked under the edit's lock, against the file as it is then (`current`, undefined for a new one). */
export function refuseUnprotected(file: string, current: SopsFile | undefined, values: Readonly<Record<string, string>>): void {
  const empty = Object.keys(values).find((name) => values[name] === '');
  if (empty !== undefined) {
    throw new UnprotectedValueError('RWS_SECRET_UNENCRYPTED', `the value of ${empty} is empty: sops never encrypts an empty string, so it would not be protected and never served; nothing was written`, { hint: 'give it a value' });
  }
  for (const name of Object.keys(values)) {
    const rule = current === undefined ? ruleLeavingUnencrypted(DEFAULT_RULE, name) : current.ruleLeavingUnencrypted(name);
    if (rule === undefined) continue;
    throw new UnprotectedValueError('RWS_SECRET_UNENCRYPTED', `the sops rule of ${file} (${rule}) leaves ${name} unencrypted: it would be stored in plain text and never served; nothing was written`, {
      hint: 'choose a name the rule encrypts, or change the rule in the file with sops',
    });
  }
}
