// `If-None-Match` of a batch request, read strictly (RFC 9110 §13.1.2): a list of entity tags,
// each compared weakly (`W/"x"` matches `"x"`, as the RFC requires for this header). `*` is
// refused: on a batch it would mean "answer 304 whatever the values are", and a watcher sending it
// would never learn a value. Anything that is not a list of entity tags is a 400, never ignored:
// a client that garbles its tag should hear so, not silently get full answers for ever.
import type { IncomingMessage } from 'node:http';
import { badRequest } from '../http-error.js';

/** One tag is all a client needs; a few for a client that keeps several. */
const MAX_TAGS = 64;
const MAX_LENGTH = 4096;
/** `W/`? then a quoted run of etagc (%x21 / %x23-7E / obs-text), then a comma or the end. */
const ENTITY_TAG = /^[ \t]*(?:W\/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|$)/;

/** The opaque tags (quotes included) the client holds; undefined when it sent none. */
export function ifNoneMatch(req: IncomingMessage): ReadonlySet<string> | undefined {
  const header = req.headers['if-none-match'];
  if (header === undefined) return undefined;
  if (header.length > MAX_LENGTH) throw badRequest(`If-None-Match is limited to ${MAX_LENGTH} characters`);
  if (header.trim() === '*') throw badRequest('If-None-Match: * is not accepted here; send the ETag of an earlier answer');
  const tags = new Set<string>();
  let rest = header;
  while (rest.trim() !== '') {
    // Empty list elements (", ,") are allowed by the list syntax (RFC 9110 §5.6.1).
    const empty = /^[ \t]*,/.exec(rest);
    if (empty !== null) {
      rest = rest.slice(empty[0].length);
      continue;
    }
    const match = ENTITY_TAG.exec(rest);
    if (match === null) throw badRequest('If-None-Match must be a list of entity tags, e.g. "v1-…" as the ETag header gave it');
    tags.add(match[1] as string);
    rest = rest.slice(match[0].length);
  }
  if (tags.size === 0) throw badRequest('If-None-Match is empty; send the ETag of an earlier answer, or no header');
  if (tags.size > MAX_TAGS) throw badRequest(`If-None-Match holds more than ${MAX_TAGS} entity tags`);
  return tags;
}

/** Weak comparison: `tag` is a strong tag as this server writes it. */
export function matchesTag(held: ReadonlySet<string> | undefined, tag: string): boolean {
  return held !== undefined && held.has(tag);
}
