// What a failure says of the connection and of the transaction on it, as opposed to an error the
// database answered with: whether the connection is unusable (destroyed, never returned to the
// pool, sent no ROLLBACK), and whether a COMMIT's outcome was left to the database.
/** A lost, refused or timed-out connection, or a server shutting down or out of resources. */
export function isBroken(error: unknown): boolean {
  return error instanceof Error && isConnectionError(error);
}

function isConnectionError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code !== 'string' || /^(08|57|53|XX)/.test(code) || /^E[A-Z]+$/.test(code);
}

/**
 * Whether a failure leaves the transaction's outcome to the database: our timer, a lost or reset
 * connection (no SQLSTATE, or class 08), or a server shutting down (57P0x). An error the database
 * answered with (the write's own statement timeout, 57014; out of resources, 53; internal, XX)
 * aborted the transaction: there is nothing to ask.
 */
export function isAnswerLost(cause: unknown): boolean {
  if (!(cause instanceof Error)) return false;
  const code = (cause as { code?: unknown }).code;
  return typeof code !== 'string' || /^E[A-Z]+$/.test(code) || /^(08|57P)/.test(code);
}
