// Credentials in URLs never reach output: yargs echoes a stray argument word for word
// (`Unknown argument: postgres://rws:secret@db/rws`), a message may quote a flag's value, and
// messages and `status` name the state database by its URL, shown without its password. Nor do
// API keys and tokens pasted where a word was expected (`apikey revoke $KEY`), as in the wrapper.
import { redactCredentials as redactKeysAndTokens } from '../credential-shapes.js';

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
 * `text` with the password of every URL in it masked as `***`, and every API key and token
 * redacted. The words of `argv` that are such URLs are masked whole first, as they were given: a
 * password may hold a space, which no pattern over the text alone could tell from the end of the URL.
 */
export function redactCredentials(text: string, argv: readonly string[] = []): string {
  let out = text;
  for (const word of argv) {
    const value = word.startsWith('--') && word.includes('=') ? word.slice(word.indexOf('=') + 1) : word;
    if (holdsPassword(value)) out = out.split(value).join(redactWord(value));
  }
  return redactKeysAndTokens(out.replace(URL_PASSWORD, '$1***@'));
}

/** Shown in place of a URL whose password cannot be told apart from the rest, or that does not parse. */
export const UNSHOWN_URL = 'postgres://(unparsable URL)';

/** Of a database URL's query, only where it connects (libpq's socket directory form); never a credential (`password=`, `sslpassword=`). */
const SHOWN_PARAMETERS = new Set(['host', 'port']);

/**
 * A database URL fit for output: user, host, port, database and the query's host and port, with
 * the password as `***`. The password is what lies between the userinfo's first `:` and the URL's
 * last `@`; a raw `/`, `?` or `#` in it would end the authority for a parser, which would read
 * its pieces as host, port, path, query or fragment (`postgres://u:12/pw@h` is host u, port 12),
 * so such a URL is not shown at all. What follows that `@` is parsed on its own, without the
 * userinfo: WHATWG refuses an empty host after credentials, the form libpq and node-postgres take
 * for a socket directory in the query (`postgresql://u:pw@/db?host=/var/run/postgresql`).
 */
export function redactUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0];
  if (scheme === undefined) return UNSHOWN_URL;
  const authority = url.slice(scheme.length);
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  if (userinfo !== undefined && /[/?#]/.test(userinfo)) return UNSHOWN_URL;
  let rest: URL;
  try {
    rest = new URL(`${scheme}${authority.slice(at + 1)}`);
  } catch {
    return UNSHOWN_URL;
  }
  const query = rest.search.slice(1).split('&').filter((pair) => SHOWN_PARAMETERS.has(pair.split('=')[0] as string)).join('&');
  return `${rest.protocol}//${userinfo === undefined ? '' : shownUserinfo(userinfo)}${rest.host}${rest.pathname}${query === '' ? '' : `?${query}`}`;
}

/** `user@` or `user:***@`, the user percent-encoded as a URL holds it (no space, control or `@` raw). */
function shownUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(':');
  const holder = new URL('postgres://host');
  holder.username = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const password = colon < 0 ? '' : userinfo.slice(colon + 1);
  return `${holder.username}${password === '' ? '' : ':***'}@`;
}
