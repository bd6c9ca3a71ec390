// Parsing the YAML stream (FORMAT.md §1 "Multi-document YAML", §5): the AST, not JS objects,
// because key order and scalar typing matter for the MAC. Scalars are read with the failsafe
// schema and typed the go-yaml way in go-yaml-type.ts.
import { isMap, isScalar, Lexer, parseAllDocuments, Scalar, type Document, type Pair, type YAMLMap } from 'yaml';
import { stringTag, stringifyString } from 'yaml/util';
import { invalid } from './errors.js';

export type YamlDoc = Document.Parsed;

/**
 * The string tag used both to read and to write. It writes double-quoted scalars with escapes
 * only and never folds them: go-yaml (like libyaml) treats U+0085, U+2028 and U+2029 as line
 * breaks, so a raw one inside quotes would not read back as itself.
 */
const goSafeStringTag = {
  ...stringTag,
  stringify(item: Scalar, ...rest: Parameters<typeof stringifyString> extends [unknown, ...infer R] ? R : never): string {
    return item.type === 'QUOTE_DOUBLE' ? quoteDouble(String(item.value)) : stringifyString(item, ...rest);
  },
};

const SHORT_ESCAPES = new Map([['"', '\\"'], ['\\', '\\\\'], ['\n', '\\n'], ['\t', '\\t'], ['\r', '\\r']]);

/** A YAML double-quoted scalar on one line, escaping everything that is not plainly printable. */
export function quoteDouble(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const short = SHORT_ESCAPES.get(ch);
    if (short !== undefined) out += short;
    else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029 || cp === 0xfeff) {
      out += `\\u${cp.toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

export const PARSE_OPTIONS = {
  schema: 'failsafe',
  customTags: (tags: unknown[]) => tags.map((t) => ((t as { tag?: string }).tag === stringTag.tag ? goSafeStringTag : t)),
  // The yaml package's duplicate check is quadratic; tree.ts checks keys in linear time.
  uniqueKeys: false,
} as const;

function lineOf(error: { linePos?: [{ line: number; col: number }] | [{ line: number; col: number }, unknown] }): string {
  const pos = error.linePos?.[0];
  return pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
}

/**
 * The yaml package spends about 1 KB of memory and tens of µs per node it builds: 4 MiB of
 * `[a,a,…]` took 40 s and 2 GB, 16 MiB ran out of heap, all before any MAC could refuse it. Its
 * lexer is cheap and allocates nothing per token, so the tokens are counted first. A sops file
 * takes about 7 tokens per value (20 000 values: 140 000 tokens).
 */
const MAX_TOKENS = 500_000;

function checkTokenCount(text: string, origin: string): void {
  let tokens = 0;
  for (const _token of new Lexer().lex(text)) {
    if (++tokens > MAX_TOKENS) throw invalid(origin, `is too large to parse (over ${MAX_TOKENS} YAML tokens, about 70 000 values)`);
  }
}

/** Parses all documents; syntax errors are reported by position and code, never with source text. */
export function parseDocuments(text: string, origin: string): YamlDoc[] {
  checkTokenCount(text, origin);
  let docs: YamlDoc[] | { errors?: unknown };
  try {
    docs = parseAllDocuments(text, PARSE_OPTIONS as never) as unknown as YamlDoc[] | { errors?: unknown };
  } catch (error) {
    // The yaml package's block parser recurses per level: `- - - … x` a few thousand deep (10 KB)
    // overflows the stack before its own RESOURCE_EXHAUSTION limit applies.
    if (error instanceof RangeError) throw invalid(origin, 'nests too deeply to parse');
    throw error;
  }
  if (!Array.isArray(docs)) throw invalid(origin, 'is not a YAML stream');
  const withContent = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  for (const doc of withContent) {
    const error = doc.errors[0];
    if (error !== undefined) {
      const what = error.code === 'DUPLICATE_KEY' ? 'has a duplicate key' : `is not valid YAML (${error.code})`;
      throw invalid(origin, `${what}${lineOf(error as never)}`);
    }
    // A document whose top level is a list or a scalar is an error in sops (FORMAT.md §1).
    if (!isMap(doc.contents)) throw invalid(origin, 'has a document whose top level is not a map');
  }
  if (withContent.length === 0) throw invalid(origin, 'is empty');
  return withContent;
}

export function topMap(doc: YamlDoc): YAMLMap {
  return doc.contents as YAMLMap;
}

/** The `sops` pair of a document's top level, if any. */
export function sopsPair(doc: YamlDoc): Pair | undefined {
  return topMap(doc).items.find((p) => isScalar(p.key) && p.key.value === 'sops');
}

/** Writes documents back, 4-space indent as sops (FORMAT.md §5) unless told otherwise. */
export function stringifyDocuments(docs: readonly YamlDoc[], indent: number): string {
  return docs
    .map((d, i) => {
      const body = d.toString({ indent, lineWidth: 0, minContentWidth: 0 });
      return i === 0 || body.startsWith('---') ? body : `---\n${body}`;
    })
    .join('');
}

/** A new double-quoted string scalar (plaintext values and keys that would not read back as strings). */
export function quoted(value: string): Scalar {
  const s = new Scalar(value);
  s.type = 'QUOTE_DOUBLE';
  return s;
}

export function plain(value: string): Scalar {
  const s = new Scalar(value);
  s.type = 'PLAIN';
  return s;
}
