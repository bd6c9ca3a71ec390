// Credentials in URLs never reach output: yargs echoes a stray argument word for word
// (`Unknown argument: postgres://rws:secret@db/rws`), and a message may quote a flag's value.

/** `scheme://user:` then the password, up to the last `@` of the word (a password may hold `@`). */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)\S*@/gi;

/** Whether a command-line word is a URL with a password (`scheme://user:pass@…`). */
function holdsPassword(word: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:.*@/is.test(word);
}

function redactWord(word: string): string {
  const at = word.lastIndexOf('@');
  const colon = word.indexOf(':', word.indexOf('://') + 3);
  return `${word.slice(0, colon + 1)}***${word.slice(at)}`;
}

/**
 * `text` with the password of every URL in it masked as `***`. The words of `argv` that are such
 * URLs are masked whole first, as they were given: a password may hold a space, which no pattern
 * over the text alone could tell from the end of the URL.
 */
export function redactCredentials(text: string, argv: readonly string[] = []): string {
  let out = text;
  for (const word of argv) {
    const value = word.startsWith('--') && word.includes('=') ? word.slice(word.indexOf('=') + 1) : word;
    if (holdsPassword(value)) out = out.split(value).join(redactWord(value));
  }
  return out.replace(URL_PASSWORD, '$1***@');
}
