// `secret import`'s dotenv reading. The dotenv package skips every line it cannot read
// (`MY KEY=1`, `ÉTÉ=1`), reads a value whose quote never closes as the text after `=`, and ends
// an unquoted value at any `#`, keeps one of a name set twice and drops `__proto__`, all without
// a word: an import would then report success with secrets missing or cut short. Every line is checked to be blank, a comment, an assignment
// dotenv reads whole, or inside a quoted value.
import { ServerUsageError } from '../usage-error.js';

/** dotenv's own key grammar and separator (`NAME=`, `export NAME=`, `NAME: `). */
const ASSIGNMENT = /^\s*(?:export\s+)?([\w.-]+)(?:\s*=|:\s)\s*(.*)$/;

/** The index just past the quote closing a value opened by `quote` at `text[0]`, or -1. */
function closingQuote(text: string, quote: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === quote) i += 1;
    else if (text[i] === quote) return i + 1;
  }
  return -1;
}

function refuse(line: number, why: string): never {
  throw new ServerUsageError(`line ${line} of stdin ${why}; nothing was written`, 'write one NAME=value per line, quote a value that holds # or spans lines, and close every quote');
}

/** Throws naming the first line dotenv would skip or misread; never quotes the line. */
export function checkDotenvLines(text: string): void {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let quote: string | undefined;
  let opened = 0;
  const firstLine = new Map<string, number>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (quote !== undefined) {
      // dotenv lets a quoted value span lines: a line ending with \ before the quote does not close it.
      const end = closingQuote(line, quote, 0);
      if (end !== -1) {
        if (!/^\s*(?:#.*)?$/.test(line.slice(end))) refuse(i + 1, 'has text after the closing quote of a value');
        quote = undefined;
      }
      continue;
    }
    if (/^\s*(?:#.*)?$/.test(line)) continue;
    const match = ASSIGNMENT.exec(line);
    if (match === null) refuse(i + 1, 'is not NAME=value (a name dotenv reads has only letters, digits, _, . and -)');
    const name = match[1]!;
    // dotenv keeps one of two values silently, and makes __proto__ the result's prototype.
    if (name === '__proto__') refuse(i + 1, 'sets __proto__, which dotenv drops');
    const first = firstLine.get(name);
    if (first !== undefined) refuse(i + 1, `sets ${name} again (first set on line ${first})`);
    firstLine.set(name, i + 1);
    const value = match[2]!;
    const opening = value[0];
    if (opening === '"' || opening === "'" || opening === '`') {
      const end = closingQuote(value, opening, 1);
      if (end === -1) {
        quote = opening;
        opened = i + 1;
      } else if (!/^\s*(?:#.*)?$/.test(value.slice(end))) refuse(i + 1, 'has text after the closing quote of a value');
    } else if (/[^\s#]#/.test(value)) {
      // dotenv ends an unquoted value at any #: `p#ss` would be imported as `p`.
      refuse(i + 1, 'has a # inside an unquoted value, which dotenv reads as the start of a comment');
    }
  }
  if (quote !== undefined) refuse(opened, 'opens a quoted value that is never closed');
}
