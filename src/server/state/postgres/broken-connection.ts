// Whether a failure leaves the connection unusable (it is then destroyed, never returned to the
// pool, and sent no ROLLBACK), as opposed to an error the database answered with.
/** A lost, refused or timed-out connection, or a server shutting down or out of resources. */
export function isBroken(error: unknown): boolean {
  return error instanceof Error && isConnectionError(error);
}

function isConnectionError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code !== 'string' || /^(08|57|53|XX)/.test(code) || /^E[A-Z]+$/.test(code);
}
