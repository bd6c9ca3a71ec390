// How the server names an error it did not make: by its class name and code only, never its
// message, which might hold data (a value, a database URL with its password, a row).

/** `TypeError`, `Error ECONNRESET`; `otherwise` for a thrown value that is not an Error. */
export function nameAndCode(error: unknown, otherwise = 'error'): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return `${error instanceof Error ? nameOf(error) : otherwise}${typeof code === 'string' && WORD.test(code) ? ` ${code}` : ''}`;
}

// A class name, an errno or SQLSTATE code is a word: anything else (a name set to a sentence, a code
// holding a newline or a value) is not repeated into a log line.
const WORD = /^[\w$][\w$.-]{0,63}$/;

function nameOf(error: Error): string {
  const name: unknown = error.name;
  return typeof name === 'string' && WORD.test(name) ? name : 'Error';
}
