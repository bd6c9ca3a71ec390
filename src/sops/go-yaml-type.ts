// How go-yaml v3 types a scalar, and the bytes sops hashes for it (FORMAT.md §4, "What ToBytes
// hashes"; go-yaml resolve.go). The `yaml` package's core schema differs (017, 1_000, dates), so
// the document is parsed with the failsafe schema (every scalar a string) and typed here.
import type { Scalar } from 'yaml';
import { formatBool, formatFloat, parseInt64, parseUint } from './go-strconv.js';
import { yamlTimestamp } from './go-time.js';

export type GoValue =
  | { readonly kind: 'null' }
  /** `text` is what sops's ToBytes writes for the value. */
  | { readonly kind: 'str' | 'int' | 'float' | 'bool' | 'time'; readonly text: string };

/** A scalar sops cannot walk (an integer that only fits uint64) or a tag we do not support. */
export class UnsupportedScalar extends Error {}

const NULL: GoValue = { kind: 'null' };
const RESOLVE_MAP = new Map<string, GoValue>([
  ...['true', 'True', 'TRUE'].map((s) => [s, { kind: 'bool', text: formatBool(true) }] as const),
  ...['false', 'False', 'FALSE'].map((s) => [s, { kind: 'bool', text: formatBool(false) }] as const),
  ...['', '~', 'null', 'Null', 'NULL'].map((s) => [s, NULL] as const),
  ...['.nan', '.NaN', '.NAN'].map((s) => [s, { kind: 'float', text: 'NaN' }] as const),
  ...['.inf', '.Inf', '.INF', '+.inf', '+.Inf', '+.INF'].map((s) => [s, { kind: 'float', text: '+Inf' }] as const),
  ...['-.inf', '-.Inf', '-.INF'].map((s) => [s, { kind: 'float', text: '-Inf' }] as const),
]);

// resolve.go's resolveTable: the first character decides which readings are tried.
function hint(s: string): 'N' | 'S' | 'D' | 'M' | '.' | undefined {
  if (s === '') return 'N';
  const c = s[0]!;
  if (c === '+' || c === '-') return 'S';
  if (c >= '0' && c <= '9') return 'D';
  if ('yYnNtTfFoO~'.includes(c)) return 'M';
  if (c === '.') return '.';
  return undefined;
}

const YAML_STYLE_FLOAT = /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/;
const DOT_FLOAT = /^\.[0-9]+([eE][-+]?[0-9]+)?$/;

function int(v: bigint): GoValue {
  return { kind: 'int', text: v.toString() };
}

function float(s: string): GoValue | undefined {
  const v = Number(s);
  // ParseFloat fails on overflow (ErrRange), and go-yaml then keeps the scalar as a string.
  return Number.isFinite(v) ? { kind: 'float', text: formatFloat(v) } : undefined;
}

/** resolve.go's resolve("", s) for a plain scalar, or with an explicit timestamp tag. */
function resolvePlain(s: string): GoValue {
  const h = hint(s);
  if (h === undefined) return { kind: 'str', text: s };
  const mapped = RESOLVE_MAP.get(s);
  if (mapped !== undefined) return mapped;
  if (h === '.') return (DOT_FLOAT.test(s) ? float(s) : undefined) ?? { kind: 'str', text: s };
  if (h !== 'D' && h !== 'S') return { kind: 'str', text: s };

  const time = yamlTimestamp(s);
  if (time !== undefined) return { kind: 'time', text: time };
  const plain = s.replaceAll('_', '');
  const i = parseInt64(plain, 0);
  if (i !== undefined) return int(i);
  // go-yaml returns a uint64 here, and sops's walkValue has no case for it ("unknown type").
  if (parseUint(plain, 0) !== undefined) throw new UnsupportedScalar('an integer beyond the int64 range');
  if (YAML_STYLE_FLOAT.test(plain)) {
    const f = float(plain);
    if (f !== undefined) return f;
  }
  for (const [prefix, base] of [['0b', 2], ['0o', 8]] as const) {
    if (plain.startsWith(prefix)) {
      const v = parseInt64(plain.slice(2), base);
      if (v !== undefined) return int(v);
      if (parseUint(plain.slice(2), base) !== undefined) throw new UnsupportedScalar('an integer beyond the int64 range');
    } else if (plain.startsWith(`-${prefix}`)) {
      const v = parseInt64(`-${plain.slice(3)}`, base);
      if (v !== undefined) return int(v);
    }
  }
  return { kind: 'str', text: s };
}

const CORE = 'tag:yaml.org,2002:';

/** The go-yaml value of a scalar node of a document parsed with the failsafe schema. */
export function goValue(node: Scalar): GoValue {
  const text = String(node.value);
  const tag = node.tag;
  if (tag === undefined || tag === '!') {
    // Quoted and block scalars are always strings (go-yaml's indicatedString).
    return node.type === 'PLAIN' || node.type === undefined ? resolvePlain(text) : { kind: 'str', text };
  }
  const short = tag.startsWith(CORE) ? tag.slice(CORE.length) : undefined;
  if (short === 'str') return { kind: 'str', text };
  if (short === 'int' || short === 'float' || short === 'bool' || short === 'null' || short === 'timestamp') {
    const v = resolvePlain(text);
    const kind = short === 'timestamp' ? 'time' : short;
    if (v.kind === kind) return v;
    // resolve.go lets an !!int value stand for an !!float.
    if (kind === 'float' && v.kind === 'int') return { kind: 'float', text: formatFloat(Number(v.text)) };
    throw new UnsupportedScalar(`a scalar that is not a valid !!${short}`);
  }
  throw new UnsupportedScalar('a scalar with an unsupported tag');
}

/** Whether go-yaml would read `s`, written as a plain scalar, as the string `s`. */
export function plainIsString(s: string): boolean {
  try {
    return resolvePlain(s).kind === 'str';
  } catch {
    return false;
  }
}
