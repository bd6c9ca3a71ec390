// The canonical form of an audit row is what every hash in every trail was computed over: the
// form that serialises a run of alike rows' fields once must give the very text of
// JSON.stringify over the whole array, whatever the fields hold.
import { describe, expect, it } from 'vitest';
import { canonicalAuditJson, chainHash, GENESIS_HASH, sealRows } from '../../../src/server/audit/chain.js';
import type { AuditRecord } from '../../../src/server/audit/record.js';
import { createHash } from 'node:crypto';

const plain = (seq: number, r: AuditRecord): string => JSON.stringify([seq, r.time, r.event, r.outcome, r.status, r.error_code, r.api_key_id, r.jti, r.subject, r.environment, r.keys, r.client, r.count]);

const base: AuditRecord = { time: '2030-01-01T12:00:00.000Z', event: 'secret.read', outcome: 'success', status: 200, error_code: null, api_key_id: 'ak_0000000000000001', jti: 'jti-1', subject: 'job', environment: 'prod', keys: ['DB_URL'], client: '127.0.0.1', count: 1 };

describe('canonical audit JSON', () => {
  it('is JSON.stringify of the row as an array, for runs of alike rows and rows that differ in any field, hostile text included', () => {
    const hostile = ['', '"', '\\', '\u2028\u2029', '\u0000\u001f', '\ud800', 'é😀', '],"x":[', 'null'];
    const variants: Array<Partial<AuditRecord>> = [
      {},
      { event: 'secret.list' },
      { outcome: 'failure', status: 401, error_code: 'RWS_AUTH_FAILED' },
      { api_key_id: null },
      { jti: null },
      { keys: null },
      { keys: [] },
      { keys: ['DB_URL', 'DB_URL'] },
      { keys: ['DB_URL', null as unknown as string] },
      { count: 17 },
      { status: -0 },
      { count: Number.NaN },
      { time: undefined as unknown as string },
      ...hostile.flatMap((text) => [{ subject: text }, { environment: text }, { client: text }, { keys: [text, 'DB_URL'] }, { time: text }]),
    ];
    let checked = 0;
    // Each variant twice in a row (a run), then the next: every change of field is crossed.
    for (const [index, variant] of variants.entries()) {
      for (const seq of [index * 2 + 1, index * 2 + 2]) {
        const record = { ...base, ...variant };
        expect(canonicalAuditJson(seq, record)).toBe(plain(seq, record));
        checked++;
      }
    }
    expect(checked).toBe(variants.length * 2);
    // A seq that is no number (a damaged row being verified) still gives JSON.stringify's text.
    expect(canonicalAuditJson('7' as unknown as number, base)).toBe(plain('7' as unknown as number, base));
  });

  it('does not reuse the text of names changed in place after a row was sealed', () => {
    const keys = ['DB_URL'];
    // A subject no earlier row had: the first call serialises this row's fields afresh.
    const record = { ...base, subject: 'names-changed-in-place', keys };
    expect(canonicalAuditJson(1, record)).toBe(plain(1, record));
    keys[0] = 'DB_PASSWORD';
    expect(canonicalAuditJson(2, record)).toContain('DB_PASSWORD');
    expect(canonicalAuditJson(2, record)).toBe(plain(2, record));
  });

  it('gives JSON.stringify\'s text for fields of other types than the server writes, in any order (rows of a tampered trail)', () => {
    const odd: Array<Partial<Record<keyof AuditRecord, unknown>>> = [
      { keys: 'AB' },
      { keys: ['A', 'B'] },
      { keys: 'AB' },
      { keys: undefined },
      { keys: 5 },
      { keys: { a: 1 } },
      { keys: new Set(['A']) },
      { keys: ['A'] },
      { keys: [1, 2] },
      { keys: ['1', '2'] },
      { status: '200' },
      { status: 200 },
      { count: 1n.toString() },
      { subject: { toJSON: () => 'job' } },
      { subject: 'job' },
    ];
    for (const [index, fields] of [...odd, ...odd.reverse()].entries()) {
      const record = { ...base, ...fields } as AuditRecord;
      expect(canonicalAuditJson(index + 1, record)).toBe(plain(index + 1, record));
    }
    // An object field changed in place between two rows is serialised again.
    const subject = { name: 'first', toJSON() { return this.name; } };
    const record = { ...base, subject } as unknown as AuditRecord;
    expect(canonicalAuditJson(1, record)).toBe(plain(1, record));
    subject.name = 'second';
    expect(canonicalAuditJson(2, record)).toContain('"second"');
  });

  it('chains SHA-256 over the previous hash and the canonical text', () => {
    const rows = sealRows({ seq: 0, hash: GENESIS_HASH }, [base, { ...base, time: '2030-01-01T12:00:00.001Z' }, { ...base, subject: 'other' }]);
    let previous = GENESIS_HASH;
    for (const [index, row] of rows.entries()) {
      expect(row.seq).toBe(index + 1);
      expect(row.hash).toBe(createHash('sha256').update(previous).update(plain(row.seq, row)).digest('hex'));
      expect(chainHash(previous, row.seq, row)).toBe(row.hash);
      previous = row.hash;
    }
  });
});
