// A path as a shell word for a line the operator pastes (`init`'s export lines). A control,
// format or separator character is written as the \xHH escapes of its UTF-8 bytes inside $'…'
// (bash, zsh, ksh; POSIX since 2024): the line stays one line that shows nothing raw on a
// terminal, and gives back the same path in any locale, where \u would depend on the locale.
const PLAIN = /^[A-Za-z0-9_./-]+$/;
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const ESCAPED = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\\']/gu;

function escapeBytes(match: string): string {
  if (match === '\\' || match === "'") return `\\${match}`;
  return [...Buffer.from(match, 'utf8')].map((byte) => `\\x${byte.toString(16).padStart(2, '0')}`).join('');
}

export function shellQuote(text: string): string {
  if (PLAIN.test(text)) return text;
  if (UNPRINTABLE.test(text)) return `$'${text.replace(ESCAPED, escapeBytes)}'`;
  return `'${text.replaceAll("'", "'\\''")}'`;
}
