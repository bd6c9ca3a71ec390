// How deep a request body nests, counted before it is parsed. JSON.parse itself parses any depth
// without recursion, but the reviver that checks every string (request.ts) makes V8 walk the
// result recursively: a valid body about 5,000 levels deep (64 KiB holds 32,000) overflowed the
// stack, and the RangeError was answered as "not valid JSON". No body of ours nests more than a
// few levels, so a deeper one is refused as what it is, after one pass over the text.

export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Whether `text` opens more than `max` objects and arrays inside one another. Brackets inside
 * strings are not counted; `text` need not be valid JSON (it is scanned before it is parsed).
 */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) return true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    }
  }
  return false;
}
