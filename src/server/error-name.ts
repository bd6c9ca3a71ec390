// How the server names an error it did not make: by its class name and code only, never its
// message, which might hold data (a value, a database URL with its password, a row).

/** `TypeError`, `Error ECONNRESET`; `otherwise` for a thrown value that is not an Error. */
export function nameAndCode(error: unknown, otherwise = 'error'): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return `${error instanceof Error ? error.name : otherwise}${typeof code === 'string' ? ` ${code}` : ''}`;
}
