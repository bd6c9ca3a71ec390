// What the server's log says of a secrets file it refuses: once per version of the file, in the
// commands' form (the file, why, the hint), and once when a later version is served again. A
// request answering with the refusal does not repeat it (logged-errors.ts).
import { RwsError } from '../../errors.js';
import { printable } from '../../printable.js';
import { fullLine } from '../state/outage-log.js';
import { explainSystemError } from '../system-errors.js';
import { markLogged } from '../logged-errors.js';
import { nameAndCode } from '../error-name.js';

export class RefusedFiles {
  readonly #refused = new Set<string>();

  constructor(private readonly log: (line: string) => void) {}

  refused(file: string, error: unknown): void {
    this.#refused.add(file);
    markLogged(error);
    const known = error instanceof RwsError ? error : explainSystemError(error);
    if (known !== undefined) return this.log(fullLine(known));
    this.log(fullLine(new RwsError('RWS_INTERNAL', `${file} could not be loaded (${nameAndCode(error)})`, { hint: 'please report this with the command line, not the secrets' })));
  }

  served(file: string): void {
    if (this.#refused.delete(file)) this.log(printable(`secrets-server: ${file} is served again`));
  }
}
