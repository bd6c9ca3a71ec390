// Secret edits (`secret set`/`import`, and PUT over the admin API) never write a value that would be stored unencrypted: the
// file's sops rule (`unencrypted_suffix`, `encrypted_regex`, …) may leave a name in plain text,
// and an empty value is never encrypted. Such a value would be readable in the file, not
// protected by the MAC, and never served; before, it was written with no warning.
import { RwsError } from '../../errors.js';
import { DEFAULT_RULE, ruleLeavingUnencrypted, type SopsFile } from '../../sops/index.js';

export class UnprotectedValueError extends RwsError {
  constructor(
    message: string,
    hint: string,
    /** The same refusal naming the environment instead of the file: an HTTP client must not learn server paths. */
    readonly publicMessage: string = message,
  ) {
    super('RWS_SECRET_UNENCRYPTED', message, { hint });
  }
}

/**
 * Checked under the edit's lock, against the file as it is then (`current`, undefined for a new
 * one). The message names `file` for the operator on the host; `publicMessage` the environment.
 */
export function refuseUnprotected(where: { environment: string; file: string }, current: SopsFile | undefined, values: Readonly<Record<string, string>>): void {
  const empty = Object.keys(values).find((name) => values[name] === '');
  if (empty !== undefined) {
    throw new UnprotectedValueError(`the value of ${empty} is empty: sops never encrypts an empty string, so it would not be protected and never served; nothing was written`, 'give it a value');
  }
  for (const name of Object.keys(values)) {
    const rule = current === undefined ? ruleLeavingUnencrypted(DEFAULT_RULE, name) : current.ruleLeavingUnencrypted(name);
    if (rule === undefined) continue;
    const refusal = (of: string) => `the sops rule of ${of} (${rule}) leaves ${name} unencrypted: it would be stored in plain text and never served; nothing was written`;
    throw new UnprotectedValueError(refusal(where.file), 'choose a name the rule encrypts, or change the rule in the file with sops', refusal(`environment ${where.environment}`));
  }
}
