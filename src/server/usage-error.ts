import { UsageError } from '../errors.js';
import { GENERAL_HINT } from './help-hint.js';

/** A usage error whose default hint points at secrets-server's help, not the wrapper's. */
export class ServerUsageError extends UsageError {
  constructor(message: string, hint = GENERAL_HINT) {
    super(message, hint);
  }
}
