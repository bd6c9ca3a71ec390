// The folding of 429 rows, fed real limiter keys: how many rows a holder of many IPv6 prefixes
// can cause in a minute.
import { describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../../src/server/audit/record.js';
import { RefusalFolder, ROWS_PER_PREFIX } from '../../../src/server/audit/refusal-folder.js';
import { limitKey } from '../../../src/server/http/limits/client-address.js';

const MINUTE = Date.parse('2030-01-01T12:00:00.000Z');

/** Notes one refusal per address at `at`, then writes every minute: the rows, as `client → count`. */
async function fold(addresses: string[], at = (_: number) => new Date(MINUTE + 1000)): Promise<AuditRecord[]> {
  const rows: AuditRecord[] = [];
  const folder = new RefusalFolder(async (record) => rows.push(record), (error) => { throw error; }, () => MINUTE + 120_000);
  addresses.forEach((address, i) => folder.note(limitKey(address), at(i)));
  await folder.close();
  return rows;
}

const counts = (rows: AuditRecord[]) => Object.fromEntries(rows.map((row) => [row.client, row.count]));
const hex = (n: number) => n.toString(16);

describe('RefusalFolder', () => {
  it('folds an IPv4 address and an IPv6 /64 into one row each per minute, with the count', async () => {
    const rows = await fold(['192.0.2.7', '192.0.2.7', '2001:db8:1:2::1', '2001:db8:1:2::ffff', '192.0.2.8']);
    expect(counts(rows)).toEqual({ '192.0.2.7': 2, '2001:db8:1:2::/64': 2, '192.0.2.8': 1 });
    expect(rows.every((row) => row.event === 'auth.rate_limited' && row.status === 429 && row.time === '2030-01-01T12:00:00.000Z')).toBe(true);
  });

  it(`gives a /48 at most ${ROWS_PER_PREFIX} rows of its /64s a minute; the others fold into the /48's row`, async () => {
    const addresses = Array.from({ length: 40 }, (_, i) => `2001:db8:9:${hex(i + 1)}::10`);
    // Each /64 twice: the second refusal of a /64 that has a row goes to that row.
    const rows = await fold([...addresses, ...addresses]);
    const expected: Record<string, number> = { '2001:db8:9::/48': 2 * (40 - ROWS_PER_PREFIX) };
    for (let i = 1; i <= ROWS_PER_PREFIX; i++) expected[`2001:db8:9:${hex(i)}::/64`] = 2;
    expect(counts(rows)).toEqual(expected);
  });

  it('bounds a /32 and all of IPv6 the same way, so that a minute holds a bounded number of rows', async () => {
    // 40 /48s of one /32, 20 /64s each, and 40 other /32s: 2,400 /64s.
    const addresses: string[] = [];
    for (let b = 1; b <= 40; b++) for (let c = 1; c <= 20; c++) addresses.push(`2001:db8:${hex(b)}:${hex(c)}::1`);
    for (let a = 1; a <= 40; a++) addresses.push(`2001:${hex(0xe00 + a)}::1`);
    const rows = await fold(addresses);
    expect(rows.reduce((sum, row) => sum + row.count, 0)).toBe(addresses.length);
    const of = (pattern: RegExp) => rows.filter((row) => pattern.test(row.client));
    // Inside 2001:db8::/32: 16 /48s get rows (16 /64 rows and a /48 row each), the rest the /32's.
    expect(of(/^2001:db8:[0-9a-f]+:[0-9a-f]+::\/64$/)).toHaveLength(ROWS_PER_PREFIX * ROWS_PER_PREFIX);
    expect(of(/^2001:db8:[0-9a-f]+::\/48$/)).toHaveLength(ROWS_PER_PREFIX);
    expect(counts(rows)['2001:db8::/32']).toBe((40 - ROWS_PER_PREFIX) * 20);
    // IPv6 as a whole holds 16 /32s with rows beneath them (2001:db8::/32 and 15 of the others);
    // the refusals of the other 25 are counted in the row of ::/0.
    expect(of(/^2001:e[0-9a-f]+::\/64$/)).toHaveLength(ROWS_PER_PREFIX - 1);
    expect(counts(rows)['::/0']).toBe(40 - (ROWS_PER_PREFIX - 1));
    expect(rows.length).toBeLessThanOrEqual(1 + ROWS_PER_PREFIX * (1 + ROWS_PER_PREFIX * (1 + ROWS_PER_PREFIX)));
  });

  it('starts the count of each prefix afresh every minute', async () => {
    const addresses = Array.from({ length: 2 * (ROWS_PER_PREFIX + 1) }, (_, i) => `2001:db8:9:${hex((i % (ROWS_PER_PREFIX + 1)) + 1)}::10`);
    // The first 17 /64s in one minute, the same 17 in the next.
    const rows = await fold(addresses, (i) => new Date(MINUTE + (i <= ROWS_PER_PREFIX ? 1000 : 61_000)));
    for (const minute of ['2030-01-01T12:00:00.000Z', '2030-01-01T12:01:00.000Z']) {
      const inMinute = rows.filter((row) => row.time === minute);
      expect(inMinute).toHaveLength(ROWS_PER_PREFIX + 1);
      expect(inMinute.find((row) => row.client === '2001:db8:9::/48')?.count).toBe(1);
    }
  });
});
