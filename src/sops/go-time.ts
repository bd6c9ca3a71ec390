// Go's time parsing and formatting, as far as SOPS needs it: go-yaml turns unquoted timestamps
// into time values that are hashed in RFC3339Nano (FORMAT.md §4), `type:time` values are
// RFC3339Nano (§2), and the MAC's AAD is `lastmodified` re-formatted as RFC3339 (§4 "Storage").

interface GoTime {
  year: number; month: number; day: number;
  hour: number; minute: number; second: number;
  /** Fractional seconds as written, without the dot; Go keeps at most 9 digits. */
  fraction: string;
  /** Minutes east of UTC. */
  offset: number;
}

function daysIn(month: number, year: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function build(m: string[], offsetText: string | undefined): GoTime | undefined {
  const [year, month, day, hour, minute, second] = m.slice(0, 6).map(Number) as [number, number, number, number, number, number];
  // The range checks of time.Parse: a value out of range is an error, not a normalised date.
  if (month < 1 || month > 12 || day < 1 || day > daysIn(month, year)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offset = 0;
  if (offsetText !== undefined && offsetText !== 'Z') {
    const oh = Number(offsetText.slice(1, 3));
    const om = Number(offsetText.slice(4, 6));
    if (oh > 24 || om > 60) return undefined;
    offset = (offsetText[0] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  return { year, month, day, hour, minute, second, fraction: (m[6] ?? '').slice(0, 9), offset };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function formatOffset(offset: number): string {
  if (offset === 0) return 'Z'; // Go's "Z07:00" writes Z for a zero offset
  const a = Math.abs(offset);
  return `${offset < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

function formatBase(t: GoTime): string {
  return `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)}T${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}`;
}

/** time.RFC3339Nano: trailing zeros of the fraction are dropped, and the dot with them. */
function formatNano(t: GoTime): string {
  const fraction = t.fraction.replace(/0+$/, '');
  return `${formatBase(t)}${fraction === '' ? '' : `.${fraction}`}${formatOffset(t.offset)}`;
}

// go-yaml's allowedTimestampFormats (resolve.go): 2006-1-2T15:4:5.999999999Z07:00 (T or t),
// "2006-1-2 15:4:5.999999999" (UTC) and "2006-1-2" (UTC midnight). Go's fields without a leading
// zero in the layout accept one or two digits.
const YAML_DATETIME = /^(\d{4})-(\d{1,2})-(\d{1,2})[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})$/;
const YAML_SPACED = /^(\d{4})-(\d{1,2})-(\d{1,2}) (\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?$/;
const YAML_DATE = /^(\d{4})-(\d{1,2})-(\d{1,2})$/;

/** go-yaml's parseTimestamp, returning the RFC3339Nano text sops hashes; undefined if not a timestamp. */
export function yamlTimestamp(s: string): string | undefined {
  let m = YAML_DATETIME.exec(s);
  if (m !== null) {
    const t = build(m.slice(1, 8).map((x) => x ?? ''), m[8]);
    return t && formatNano(t);
  }
  m = YAML_SPACED.exec(s);
  if (m !== null) {
    const t = build(m.slice(1, 8).map((x) => x ?? ''), undefined);
    return t && formatNano(t);
  }
  m = YAML_DATE.exec(s);
  if (m !== null) {
    const t = build([m[1]!, m[2]!, m[3]!, '0', '0', '0', ''], undefined);
    return t && formatNano(t);
  }
  return undefined;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

function parseRfc3339(s: string): GoTime | undefined {
  const m = RFC3339.exec(s);
  return m === null ? undefined : build(m.slice(1, 8).map((x) => x ?? ''), m[8]);
}

/** time.Time.UnmarshalText then MarshalText: the canonical form of a `type:time` value. */
export function canonicalTime(s: string): string | undefined {
  const t = parseRfc3339(s);
  return t && formatNano(t);
}

/**
 * `lastmodified` as the MAC's AAD: parsed as RFC3339 and formatted with time.RFC3339, which
 * drops fractional seconds and writes a zero offset as Z (FORMAT.md §4 "Storage").
 */
export function macAad(lastModified: string): string | undefined {
  const t = parseRfc3339(lastModified);
  return t && `${formatBase(t)}${formatOffset(t.offset)}`;
}

/** `lastmodified` for a file written now: UTC, RFC3339 to the second (FORMAT.md §7 step 3). */
export function nowRfc3339(now: Date = new Date()): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
