// Go's strconv, as far as SOPS needs it: the MAC hashes Go's text form of typed values
// (FORMAT.md §2 "Types" and §4 "What ToBytes hashes"), so these must agree with Go byte for byte.
// Every parser returns undefined where Go returns an error.

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

const DIGITS: Record<number, RegExp> = { 2: /^[01]+$/, 8: /^[0-7]+$/, 10: /^[0-9]+$/, 16: /^[0-9a-fA-F]+$/ };
const PREFIX: Record<number, string> = { 2: '0b', 8: '0o', 10: '', 16: '0x' };

function digitsToBigInt(digits: string, base: number): bigint | undefined {
  const re = DIGITS[base];
  if (re === undefined || !re.test(digits)) return undefined;
  return base === 10 ? BigInt(digits) : BigInt(`${PREFIX[base]}${digits}`);
}

/** strconv.ParseUint(s, base, 64); base 0 reads the 0x/0o/0b/0 prefixes. No sign allowed. */
export function parseUint(s: string, base: 0 | 2 | 8 | 10): bigint | undefined {
  let digits = s;
  let b: number = base;
  if (base === 0) {
    b = 10;
    if (s.length > 1 && s[0] === '0') {
      const p = s[1]!.toLowerCase();
      if (p === 'x') [b, digits] = [16, s.slice(2)];
      else if (p === 'o') [b, digits] = [8, s.slice(2)];
      else if (p === 'b') [b, digits] = [2, s.slice(2)];
      else [b, digits] = [8, s.slice(1)];
    }
  }
  const v = digitsToBigInt(digits, b);
  return v !== undefined && v <= UINT64_MAX ? v : undefined;
}

/** strconv.ParseInt(s, base, 64): an optional sign, then ParseUint, then the int64 range. */
export function parseInt64(s: string, base: 0 | 2 | 8 | 10): bigint | undefined {
  const negative = s.startsWith('-');
  const body = s.startsWith('-') || s.startsWith('+') ? s.slice(1) : s;
  const magnitude = parseUint(body, base);
  if (magnitude === undefined) return undefined;
  const v = negative ? -magnitude : magnitude;
  return v >= INT64_MIN && v <= INT64_MAX ? v : undefined;
}

/** strconv.ParseBool. */
export function parseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

/** How sops writes a bool (`strings.Title(strconv.FormatBool(b))`, FORMAT.md §2). */
export function formatBool(b: boolean): string {
  return b ? 'True' : 'False';
}

const DECIMAL_FLOAT = /^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
const SPECIAL_FLOAT = /^([+-]?)(inf|infinity|nan)$/i;

/**
 * strconv.ParseFloat(s, 64) for decimal and inf/nan spellings. Hexadecimal floats and
 * underscores, which Go also accepts, are refused: sops never writes them (it writes 'f' form).
 * Overflow is an error in Go (ErrRange), so it is here.
 */
export function parseFloat64(s: string): number | undefined {
  const special = SPECIAL_FLOAT.exec(s);
  if (special !== null) {
    if (special[2]!.toLowerCase() === 'nan') return special[1] === '' ? Number.NaN : undefined;
    return special[1] === '-' ? -Infinity : Infinity;
  }
  if (!DECIMAL_FLOAT.test(s)) return undefined;
  const v = Number(s);
  return Number.isFinite(v) ? v : undefined;
}

/**
 * strconv.FormatFloat(f, 'f', -1, 64): the shortest digits that round-trip, never an exponent
 * (FORMAT.md §2: 1e21 is written 1000000000000000000000). JS and Go both pick the shortest
 * round-trip digits; only the layout differs, so the digits are taken from toExponential().
 */
export function formatFloat(f: number): string {
  if (Number.isNaN(f)) return 'NaN';
  if (f === Infinity) return '+Inf';
  if (f === -Infinity) return '-Inf';
  if (f === 0) return Object.is(f, -0) ? '-0' : '0';
  const sign = f < 0 ? '-' : '';
  const [mantissa, exp] = Math.abs(f).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const point = Number(exp) + 1;
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}
