// What the log says when the rollback guard's once-a-second check cannot run for a reason of the
// store's (state-seen.json made readable by others, another user's file, a full disk): it failed
// in silence, and a database restored from an older copy went unnoticed by it for as long. Told
// once in full, again only when the reason changes, and once when the check runs again. A state
// database that does not answer is the requests' to tell (outage-log.ts), not repeated here.
import { RwsError } from '../../errors.js';
import { explainSystemError } from '../system-errors.js';
import { fullLine, OutageLog } from './outage-log.js';
import { nameAndCode } from '../error-name.js';

const CONSEQUENCE = 'the check for a state database restored from an older copy cannot run until then';

export class GuardFailures {
  #told: string | undefined;

  constructor(private readonly log: (line: string) => void) {}

  failed(error: unknown): void {
    if (OutageLog.covers(error)) return;
    const known = error instanceof RwsError ? error : explainSystemError(error);
    const what = known ?? new RwsError('RWS_INTERNAL', `the rollback check failed (${nameAndCode(error)})`, { hint: 'please report this with the command line' });
    const line = fullLine(new RwsError(what.code, `${what.message}; ${CONSEQUENCE}`, { hint: what.hint }));
    if (line === this.#told) return;
    this.#told = line;
    this.log(line);
  }

  ran(): void {
    if (this.#told === undefined) return;
    this.#told = undefined;
    this.log('secrets-server: the rollback check runs again');
  }
}
