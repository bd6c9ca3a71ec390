// What every subcommand gets: parsed values, process facts, output streams and the logger.
import type { Writable } from 'node:stream';
import type { SecretInput } from '../secret-prompt.js';
import type { ProcessFacts } from '../../config/resolve.js';
import type { ParsedArgs } from '../options.js';
import type { Logger } from '../output.js';

export interface CommandContext {
  values: ParsedArgs['values'];
  facts: ProcessFacts;
  stdout: Writable & { isTTY?: boolean };
  /** For `login`: the key comes from here, never from argv (opened on first call). */
  stdin?: () => SecretInput;
  /** For `login`'s prompt, beside the diagnostics. */
  stderr?: Writable;
  log: Logger;
  color: boolean;
}
