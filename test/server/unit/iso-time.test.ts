import { describe, expect, it } from 'vitest';
import { parseIsoTime } from '../../../src/server/iso-time.js';

describe('parseIsoTime', () => {
  it('reads dates and date-times with an explicit zone', () => {
    expect(parseIsoTime('2030-01-31')?.toISOString()).toBe('2030-01-31T00:00:00.000Z');
    expect(parseIsoTime('2030-01-31T12:30Z')?.toISOString()).toBe('2030-01-31T12:30:00.000Z');
    expect(parseIsoTime('2030-01-31T23:59:59.999+02:00')?.toISOString()).toBe('2030-01-31T21:59:59.999Z');
    expect(parseIsoTime('2028-02-29T00:00:00Z')?.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(parseIsoTime('2000-02-29')?.toISOString()).toBe('2000-02-29T00:00:00.000Z');
  });

  it('refuses dates that do not exist instead of rolling them into the next month', () => {
    for (const text of ['2026-02-30T00:00:00Z', '2026-02-29', '1900-02-29', '2026-04-31', '2026-06-31T00:00:00+02:00', '2026-13-01', '2026-00-10', '2026-01-00']) {
      expect({ text, date: parseIsoTime(text) }).toEqual({ text, date: undefined });
    }
  });

  it('refuses hours, minutes, seconds and zone offsets out of range', () => {
    for (const text of ['2026-01-01T24:00:00Z', '2026-01-01T23:60Z', '2026-01-01T00:00:60Z', '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00+23:60']) {
      expect({ text, date: parseIsoTime(text) }).toEqual({ text, date: undefined });
    }
  });

  it('refuses what Date would read in the local zone or guess at', () => {
    for (const text of ['2030', '1 Jan 2030', '2030-01-31T00:00:00', 'next tuesday', `2030-01-31T00:00:00.${'1'.repeat(60)}Z`]) expect(parseIsoTime(text)).toBeUndefined();
  });
});
