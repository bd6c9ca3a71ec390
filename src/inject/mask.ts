// --mask: replaces secret values in the child's output with ******. Works on bytes, so a value
// split across chunks (or across a UTF-8 sequence) is still caught; only a tail that could be
// the start of a secret is held back, never the whole output.
import { Transform, type TransformCallback } from 'node:stream';

export const MASK = Buffer.from('******');
/** Shorter values are not masked: replacing every "ab" in the output would destroy it. */
export const MIN_MASKED_LENGTH = 4;

/** The byte strings to hide for one value: itself and the encodings a program is likely to print. */
export function maskedForms(value: string): string[] {
  const forms = new Set<string>([value]);
  const base64 = Buffer.from(value, 'utf8').toString('base64');
  forms.add(base64);
  forms.add(base64.replace(/=+$/, ''));
  forms.add(Buffer.from(value, 'utf8').toString('base64url'));
  forms.add(encodeURIComponent(value));
  forms.add(encodeURIComponent(value).replace(/%20/g, '+'));
  forms.add(JSON.stringify(value).slice(1, -1));
  return [...forms].filter((form) => form.length >= MIN_MASKED_LENGTH);
}

/** Says which secrets are too short to be masked (by name), so that none is printed unannounced. */
export function warnUnmasked(secrets: ReadonlyMap<string, string>, warn: (code: string, message: string) => void): void {
  const short = [...secrets].filter(([, value]) => value.length > 0 && value.length < MIN_MASKED_LENGTH).map(([name]) => name);
  if (short.length > 0) warn('RWS_MASK_SHORT_VALUE', `values shorter than ${MIN_MASKED_LENGTH} characters are not masked: ${short.join(', ')}`);
}

export function buildNeedles(values: Iterable<string>): Buffer[] {
  const all = new Set<string>();
  for (const value of values) {
    if (value.length < MIN_MASKED_LENGTH) continue;
    for (const form of maskedForms(value)) all.add(form);
  }
  // Longest first, so a value that contains another is masked as a whole.
  return [...all].map((form) => Buffer.from(form, 'utf8')).sort((a, b) => b.length - a.length);
}

export class MaskStream extends Transform {
  private held: Buffer = Buffer.alloc(0);
  /** How many of the held bytes belong to a value already found: masked whatever follows. */
  private heldMasked = 0;
  private maxLength: number;

  constructor(private needles: readonly Buffer[]) {
    super();
    this.maxLength = needles.reduce((max, needle) => Math.max(max, needle.length), 0);
  }

  /**
   * --watch with a reload signal: what to mask from now on (the new values, and the old ones still
   * kept: src/watch/mask-retention.ts). A tail held back is looked at again with these.
   */
  setNeedles(needles: readonly Buffer[]): void {
    const unique = new Map(needles.map((needle) => [needle.toString('latin1'), needle]));
    this.needles = [...unique.values()].sort((a, b) => b.length - a.length);
    this.maxLength = this.needles.reduce((max, needle) => Math.max(max, needle.length), 0);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = this.held.length === 0 ? chunk : Buffer.concat([this.held, chunk]);
    const ranges = this.rangesIn(data);
    // Held back even inside a value already found: its end may be the start of another value
    // (secrets that overlap), whose rest comes in the next chunk.
    const holdFrom = this.heldTailStart(data);
    const crossing = ranges.find(([start, end]) => start < holdFrom && end > holdFrom);
    this.heldMasked = crossing === undefined ? 0 : crossing[1] - holdFrom;
    this.held = Buffer.from(data.subarray(holdFrom));
    const out = redact(data.subarray(0, holdFrom), ranges);
    if (out.length > 0) this.push(out);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.held.length > 0) this.push(redact(this.held, this.rangesIn(this.held)));
    this.held = Buffer.alloc(0);
    this.heldMasked = 0;
    callback();
  }

  /** The ranges to mask in `data`, which starts with what was held (its masked part included). */
  private rangesIn(data: Buffer): Array<[number, number]> {
    const ranges = findRanges(data, this.needles);
    if (this.heldMasked === 0) return ranges;
    return mergeRanges([[0, this.heldMasked], ...ranges]);
  }

  /** Earliest position from which the rest of `data` is a proper prefix of some needle. */
  private heldTailStart(data: Buffer): number {
    const start = data.length - this.maxLength + 1;
    for (let position = Math.max(start, 0); position < data.length; position++) {
      const tail = data.subarray(position);
      const first = tail[0];
      if (this.needles.some((needle) => needle[0] === first && needle.length > tail.length && needle.subarray(0, tail.length).equals(tail))) {
        return position;
      }
    }
    return data.length;
  }
}

/** Non-overlapping [start, end) ranges covering every occurrence of every needle, merged. */
export function findRanges(data: Buffer, needles: readonly Buffer[]): Array<[number, number]> {
  const found: Array<[number, number]> = [];
  for (const needle of needles) {
    for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
      found.push([at, at + needle.length]);
    }
  }
  return mergeRanges(found);
}

function mergeRanges(found: Array<[number, number]>): Array<[number, number]> {
  found.sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const range of found) {
    const last = merged[merged.length - 1];
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  return merged;
}

function redact(data: Buffer, ranges: ReadonlyArray<[number, number]>): Buffer {
  if (ranges.length === 0) return Buffer.from(data);
  const parts: Buffer[] = [];
  let cursor = 0;
  for (const [start, end] of ranges) {
    if (start >= data.length) break;
    parts.push(data.subarray(cursor, start), MASK);
    cursor = Math.min(end, data.length);
  }
  parts.push(data.subarray(cursor));
  return Buffer.concat(parts);
}
