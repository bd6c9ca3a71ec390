// `secret list`: every top-level name, one per line; a name the API will never serve is marked
// with why (a plaintext or empty value, or a name outside the variable-name grammar such as
// `0word`), and counted on stderr, so it is not silently missing at read time. Names are not
// authenticated (an empty value can be added without a key), so a control character in one (an
// escape sequence, a newline faking a served name) is written escaped, never raw.
import type { SopsFile } from '../../sops/index.js';
import type { CliIo } from '../cli.js';
import { neverServedBecause } from '../store/served-values.js';
import { printable } from '../../printable.js';

export function writeNameList(file: SopsFile, io: Pick<CliIo, 'stdout' | 'stderr'>): void {
  const never: string[] = [];
  for (const name of file.names) {
    const why = neverServedBecause(file, name);
    const shown = printable(name);
    if (why !== undefined) never.push(shown);
    io.stdout.write(why === undefined ? `${shown}\n` : `${shown}  (never served: ${why})\n`);
  }
  if (never.length > 0) io.stderr.write(`secrets-server: ${never.length} of ${file.names.length} names are never served by the API: ${never.join(', ')}\n`);
}
