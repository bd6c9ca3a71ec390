// JSON.parse keeps the last of a name given twice in one object, silently (RFC 8259 §4 leaves
// that to each parser). A vault answer naming a secret twice could then mean one value to us and
// another to any proxy or log that reads the same bytes (our server never sends one); a file given
// to `secret import` naming one twice holds a value that would be dropped without a word. So text
// that JSON.parse accepted is scanned once more for a repeated name.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The index of the quote that ends the string opening at `start`. `text` is valid JSON. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * The first name an object of `text` (valid JSON, as JSON.parse just accepted it) gives twice,
 * decoded, or undefined. Names only: the caller decides whether a name may be said.
 */
export function duplicateName(text: string): string | undefined {
  // One set of names per open object; undefined for an open array.
  const open: Array<Set<string> | undefined> = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (expectName) {
        // Decoded, so that "A" and "\u0041" are the same name, as they are to JSON.parse.
        const raw = text.slice(i, end + 1);
        const name = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        const names = open[open.length - 1]!;
        if (names.has(name)) return name;
        names.add(name);
        expectName = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      open.push(new Set());
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      open.push(undefined);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      open.pop();
    } else if (c === 0x2c /* , */) {
      expectName = open[open.length - 1] !== undefined;
    }
  }
  return undefined;
}
