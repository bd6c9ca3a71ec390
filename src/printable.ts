// Text from files and the state printed to a terminal: stored names, and a SOPS file's
// unauthenticated metadata (recipients, rules), are shown as they are, but a control character
// (an ANSI escape, a newline that fakes another row) is escaped, never sent raw. Rows may be
// hand-edited, and anyone who can write a SOPS file can write its metadata without a key.
//
// So is every character that is not there to be seen, since a token's subject and a key's name
// are free text chosen by whoever holds an API key: format characters (Cf: a bidi override such
// as U+202E shows the rest of the line reversed, so `client=` or `revoked=` read as something
// else; zero-width characters and the invisible tag characters U+E0000-E007F), the line and
// paragraph separators U+2028 and U+2029 (a line break to many readers), and a lone surrogate.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/** Each UTF-16 unit as `\uXXXX`: a character beyond U+FFFF as its surrogate pair, which JSON reads back as that character. */
function escapeUnits(match: string): string {
  let out = '';
  for (let i = 0; i < match.length; i++) out += `\\u${match.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/** `value` with every control, format or separator character written as `\uXXXX`. */
export function printable(value: string): string {
  return value.replace(UNPRINTABLE, escapeUnits);
}

/**
 * `value` as one line of JSON that is safe on a terminal. JSON.stringify escapes C0 controls and
 * lone surrogates but leaves DEL, the C1 controls (U+009B is a CSI to some terminals), format
 * characters and U+2028/U+2029 raw. Outside strings JSON text is plain ASCII, and a `\uXXXX` is a
 * valid escape anywhere inside one, so the line parses to exactly the same value.
 */
export function printableJson(value: unknown): string {
  return printable(JSON.stringify(value));
}
