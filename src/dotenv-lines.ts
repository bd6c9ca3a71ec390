// The lines of a dotenv text that the dotenv package skips or misreads without a word: it skips
// every line it cannot read (`MY KEY=1`, `ÉTÉ=1`), reads a value whose quote never closes as the
// text after `=`, ends an unquoted value at any `#`, keeps the last of a name set twice and drops
// `__proto__`. `secret import` refuses such a text (it would report success with secrets missing
// or cut short); `--env-file` reads it as dotenv does, as the developer's app will, and warns.
// Every line is checked to be blank, a comment, an assignment dotenv reads whole, or inside a
// quoted value. A problem names its line, never quotes it: the line may hold a secret.

/** dotenv's own key grammar and separator (`NAME=`, `export NAME=`, `NAME: `). */
const ASSIGNMENT = /^\s*(?:export\s+)?([\w.-]+)(?:\s*=|:\s)\s*(.*)$/;

export interface DotenvProblem {
  /** 1-based. */
  readonly line: number;
  /** Why, as the end of a sentence that starts "line N " (`is not NAME=value …`). */
  readonly why: string;
}

/** The index just past the quote closing a value opened by `quote` at `text[0]`, or -1. */
function closingQuote(text: string, quote: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    if (text[i] === '\\' && text[i + 1] === quote) i += 1;
    else if (text[i] === quote) return i + 1;
  }
  return -1;
}

/** Every line dotenv would skip or misread, in order; at most `limit`. */
export function dotenvProblems(text: string, limit = Infinity): DotenvProblem[] {
  const problems: DotenvProblem[] = [];
  const note = (line: number, why: string): boolean => problems.push({ line, why }) >= limit;
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
        quote = undefined;
        if (!/^\s*(?:#.*)?$/.test(line.slice(end)) && note(i + 1, 'has text after the closing quote of a value')) return problems;
      }
      continue;
    }
    if (/^\s*(?:#.*)?$/.test(line)) continue;
    const match = ASSIGNMENT.exec(line);
    if (match === null) {
      if (note(i + 1, 'is not NAME=value (a name dotenv reads has only letters, digits, _, . and -)')) return problems;
      continue;
    }
    const name = match[1]!;
    // dotenv keeps one of two values silently, and makes __proto__ the result's prototype.
    if (name === '__proto__') {
      if (note(i + 1, 'sets __proto__, which dotenv drops')) return problems;
      continue;
    }
    const first = firstLine.get(name);
    if (first !== undefined && note(i + 1, `sets ${name} again (first set on line ${first})`)) return problems;
    if (first === undefined) firstLine.set(name, i + 1);
    const value = match[2]!;
    const opening = value[0];
    if (opening === '"' || opening === "'" || opening === '`') {
      const end = closingQuote(value, opening, 1);
      if (end === -1) {
        quote = opening;
        opened = i + 1;
      } else if (!/^\s*(?:#.*)?$/.test(value.slice(end)) && note(i + 1, 'has text after the closing quote of a value')) return problems;
    } else if (/[^\s#]#/.test(value)) {
      // dotenv ends an unquoted value at any #: `p#ss` would be read as `p`.
      if (note(i + 1, 'has a # inside an unquoted value, which dotenv reads as the start of a comment')) return problems;
    }
  }
  if (quote !== undefined) note(opened, 'opens a quoted value that is never closed');
  return problems;
}
