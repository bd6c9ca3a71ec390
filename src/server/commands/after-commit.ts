// What an admin command does once its change has committed. The change stands then: the key
// exists, the revocation holds, the rows are in. Reporting a failure of a later step (recording
// the audit head in state-seen.json, closing the database) as the command's failure would tell
// the operator it did not happen: they would retry, and `apikey create` would have made a live
// key that nobody holds, since its key was never printed. So the result is printed first, and a
// later step that fails is one warning line on stderr; the exit status stays 0.
import { RwsError } from '../../errors.js';
import type { CliIo } from '../cli.js';
import { explainSystemError } from '../system-errors.js';
import { printable } from '../../printable.js';
import { nameAndCode } from '../error-name.js';

/** Runs `step` after a commit; its failure becomes a warning naming `what` failed. */
export async function afterCommit(io: CliIo, what: string, step: () => Promise<unknown>): Promise<void> {
  try {
    await step();
  } catch (raw) {
    // Escaped as every error line is: the message may quote the store's path (state-seen.json's).
    io.stderr.write(`${printable(`secrets-server: warning ${describe(raw)}; ${what} failed after the change was committed (the change stands)`)}\n`);
  }
}

/** `CODE: message (hint: …)`, as errors are reported; an unknown error by its name and code only. */
function describe(raw: unknown): string {
  const error = raw instanceof RwsError ? raw : (explainSystemError(raw) ?? raw);
  if (error instanceof RwsError) return `${error.code}: ${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}`;
  return `RWS_INTERNAL: ${nameAndCode(error, 'unknown')}`;
}
