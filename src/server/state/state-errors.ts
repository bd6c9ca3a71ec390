import { RwsError } from '../../errors.js';

/** The state database could not be reached or written; nothing was changed by the request. */
export class StateUnavailableError extends RwsError {
  constructor(message: string, cause?: unknown) {
    super('RWS_STATE_UNAVAILABLE', message, { cause, hint: 'check that the state database is reachable and writable (secrets-server db status)' });
  }
}

/** The extra audit file sink could not be written; the transaction is rolled back. */
export class AuditSinkError extends RwsError {
  constructor(message: string, cause?: unknown) {
    super('RWS_AUDIT_UNAVAILABLE', message, { cause, hint: 'check the --audit-log file and its filesystem' });
  }
}
