// A database URL's query pairs as node-postgres reads them, for taking some out before it does
// (time-limits.ts, the lock session's application_name). node-postgres parses the URL with WHATWG
// URL: the query is after the first `?` (unless a `#` comes first), up to the `#`; tabs and
// newlines are dropped from the whole URL, and C0 controls and spaces trimmed off its ends. Every
// pair not taken out is kept exactly as given. No `pg` here: a command checks the URL before the
// driver is loaded.

/** The URL's query as node-postgres (WHATWG URL) finds it. */
function queryBounds(url: string): { start: number; end: number } | undefined {
  const question = url.indexOf('?');
  const hash = url.indexOf('#');
  if (question < 0 || (hash >= 0 && hash < question)) return undefined;
  return { start: question + 1, end: hash < 0 ? url.length : hash };
}

/** A query pair as node-postgres reads it (so `statement_time<TAB>out` is `statement_timeout` to it). */
function pairParams(pair: string): URLSearchParams {
  return new URLSearchParams(pair.replace(/[\t\n\r]/g, ''));
}

/**
 * A query pair's name, decoded as URLSearchParams (and so node-postgres) decodes it, and trimmed
 * as WHATWG URL trims the URL's end (a last pair `statement_timeout\x01` is `statement_timeout`).
 * Trimmed on every pair: a name that is one we look for but for such characters is no other
 * parameter's either.
 */
function pairName(pair: string): string {
  return ([...pairParams(pair).keys()][0] ?? '').replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, '');
}

/** A pair as `drop` sees it: its name and its value, both decoded. */
export interface QueryPair {
  name: string;
  value: string;
}

/** `url` without the query pairs `drop` answers true for; the rest of the URL as given. */
export function withoutPairs(url: string, drop: (pair: QueryPair) => boolean): string {
  const bounds = queryBounds(url);
  if (bounds === undefined) return url;
  const kept: string[] = [];
  for (const pair of url.slice(bounds.start, bounds.end).split('&')) {
    const name = pairName(pair);
    if (!drop({ name, value: [...pairParams(pair).values()][0] ?? '' })) kept.push(pair);
  }
  const query = kept.join('&');
  return `${url.slice(0, bounds.start - 1)}${query === '' ? '' : `?${query}`}${url.slice(bounds.end)}`;
}
