// `secret list`: every top-level name, one per line; a name the API will never serve is marked
// with why (a plaintext or empty value, or a name outside the variable-name grammar such as
// `0word`), and counted on stderr, so it is not silently missing at read time.
import type { SopsFile } from '../../sops/index.js';
import type { CliIo } from '../cli.js';
import { neverServedBecause } from '../store/served-values.js';

export function writeNameList(file: SopsFile, io: Pick<CliIo, 'stdout' | 'stderr'>): void {
  const never: string[] = [];
  for (const name of file.names) {
    const why = neverServedBecause(file, name);
    if (why !== undefined) never.push(name);
    io.stdout.write(why === undefined ? `${name}\n` : `${name}  (never served: ${why})\n`);
  }
  if (never.length > 0) io.stderr.write(`secrets-server: ${never.length} of ${file.names.length} names are never served by the API: ${never.join(', ')}\n`);
}
