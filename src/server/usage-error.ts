import { UsageError } from '../errors.js';

/** A usage error whose default hint points at secrets-server's help, not the wrapper's. */
export class ServerUsageError extends UsageError {
  constructor(message: string, hint = 'see secrets-server --help') {
    super(message, hint);
  }
}
