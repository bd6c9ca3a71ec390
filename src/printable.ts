// Text from files and the state printed to a terminal: stored names, and a SOPS file's
// unauthenticated metadata (recipients, rules), are shown as they are, but a control character
// (an ANSI escape, a newline that fakes another row) is escaped, never sent raw. Rows may be
// hand-edited, and anyone who can write a SOPS file can write its metadata without a key.

/** `value` with every control character written as `\uXXXX`. */
export function printable(value: string): string {
  return value.replace(/[\p{Cc}]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
