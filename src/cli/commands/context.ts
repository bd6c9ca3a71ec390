// What every subcommand gets: parsed values, process facts, output streams and the logger.
import type { Writable } from 'node:stream';
import type { ProcessFacts } from '../../config/resolve.js';
import type { ParsedArgs } from '../options.js';
import type { Logger } from '../output.js';

export interface CommandContext {
  values: ParsedArgs['values'];
  facts: ProcessFacts;
  stdout: Writable & { isTTY?: boolean };
  log: Logger;
  color: boolean;
}
