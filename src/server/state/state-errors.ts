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

/**
 * The database refused a value as data (PostgreSQL's class 22: a NUL in text, a number out of
 * range). The database answered, so it is not unavailable; a value slipped past the checks that
 * should have refused it first. Its message names the SQLSTATE, never the value.
 */
export class StateDataError extends RwsError {
  constructor(sqlState: string, cause?: unknown) {
    super('RWS_STATE_INVALID', `the state database refused a value as invalid (SQLSTATE ${sqlState}); nothing was changed`, {
      cause,
      hint: 'a value secrets-server should have refused first: please report it with the command line, not the secrets',
    });
  }
}

/** Migrating found tables (or columns) of the same names that secrets-server did not make. */
export class ForeignSchemaError extends RwsError {
  constructor(location: string, cause?: unknown) {
    super('RWS_STATE_INVALID', `the state database ${location} holds tables not made by secrets-server (a table such as api_keys exists with another shape); nothing was changed`, {
      cause,
      hint: 'give secrets-server an empty database of its own (CREATE DATABASE rws), not one another application uses',
    });
  }
}
