// The audit trail is a hash chain: each row's hash is SHA-256 over the previous row's hash and
// the row's canonical JSON, so an edited, deleted, inserted or reordered row breaks every hash
// after it. The canonical form is fixed here and nowhere else: field order, JSON.stringify's
// escaping, and `keys` as an array or null.
import { hash } from 'node:crypto';
import { type AuditRecord, sameAfterTime, type StoredAuditRow, storedRow } from './record.js';
import { redactCredentials } from '../../credential-shapes.js';

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalAuditJson(seq: number, r: AuditRecord): string {
  // The same text as JSON.stringify of the whole array, with the fields after `time` serialised
  // once for a run of rows alike in them (a batch of reads of one token by one client).
  if (typeof seq !== 'number' || typeof r.time !== 'string') return JSON.stringify([seq, r.time, r.event, r.outcome, r.status, r.error_code, r.api_key_id, r.jti, r.subject, r.environment, r.keys, r.client, r.count]);
  return `[${JSON.stringify(seq)},${JSON.stringify(r.time)},${tailOf(r)}`;
}

// The last row's fields after `time`, and their JSON without its opening bracket; reused only if
// they were all plain values (text, numbers, null) and the names an array of text, so that no
// object changed in place, and nothing that merely compares equal, can bring back stale text.
let last: { r: AuditRecord; keys: readonly string[] | null; tail: string } | undefined;

function tailOf(r: AuditRecord): string {
  const seen = last;
  if (seen !== undefined && sameAfterTime(seen.r, r, seen.keys)) return seen.tail;
  const tail = JSON.stringify([r.event, r.outcome, r.status, r.error_code, r.api_key_id, r.jti, r.subject, r.environment, r.keys, r.client, r.count]).slice(1);
  // The names are copied: a caller may change its array after sealing.
  last = plainTail(r) ? { r: { ...r }, keys: r.keys === null ? null : [...r.keys], tail } : undefined;
  return tail;
}

const plain = (value: unknown): boolean => value === null || (typeof value !== 'object' && typeof value !== 'function');

function plainTail(r: AuditRecord): boolean {
  const keys: unknown = r.keys;
  if (keys !== null && !(Array.isArray(keys) && keys.every((name) => typeof name === 'string'))) return false;
  return [r.event, r.outcome, r.status, r.error_code, r.api_key_id, r.jti, r.subject, r.environment, r.client, r.count].every(plain);
}

export function chainHash(previousHash: string, seq: number, record: AuditRecord): string {
  // One-shot: the same digest as a Hash object fed both parts, without making one per row.
  return hash('sha256', previousHash + canonicalAuditJson(seq, record), 'hex');
}

// Both databases keep text as UTF-8, which cannot hold a lone surrogate: one comes back as U+FFFD.
// A row is sealed as it will be read back, or it could never verify. Requests with one are
// refused (400) before they get here; this is the backstop for the one free-text field.
const LONE_SURROGATES = /\p{Cs}/gu;
const withoutSurrogates = (r: AuditRecord): AuditRecord => (r.subject !== null && r.subject.search(LONE_SURROGATES) !== -1 ? { ...r, subject: r.subject.replace(LONE_SURROGATES, '\ufffd') } : r);

// A row names what a request asked for, refused or not: an API key or a token sent where a name,
// an environment or a subject goes (`GET /api/v1/vault/prod/rws_sk_…`, `--key $KEY`) would be kept
// in the trail, shipped by --audit-log and shown by the console. Sealed redacted, so it verifies.
// Every row is sealed on the hot path: a row with nothing credential-like (all of them, but for
// a mistake) is passed on as it is, after one cheap test per field, and copied only to redact.
const MAYBE_CREDENTIAL = /rws_sk_|eyJ/i;
const suspect = (text: string | null): boolean => text !== null && MAYBE_CREDENTIAL.test(text);
const redact = (text: string | null): string | null => (text === null ? null : redactCredentials(text));
const withoutCredentials = (r: AuditRecord): AuditRecord =>
  suspect(r.subject) || suspect(r.environment) || (r.keys !== null && r.keys.some(suspect))
    ? { ...r, subject: redact(r.subject), environment: redact(r.environment), keys: r.keys?.map((name) => redactCredentials(name)) ?? null }
    : r;

const asStored = (r: AuditRecord): AuditRecord => withoutCredentials(withoutSurrogates(r));

/** Seals records after the head (`seq`, `hash`): the rows to insert, in order. */
export function sealRows(head: { seq: number; hash: string }, records: readonly AuditRecord[]): StoredAuditRow[] {
  let { seq, hash } = head;
  return records.map((record) => {
    const r = asStored(record);
    seq += 1;
    hash = chainHash(hash, seq, r);
    return storedRow(r, seq, hash);
  });
}

export type ChainCheck = { ok: true; count: number; head: string } | { ok: false; count: number; seq: number; problem: string };

/**
 * Walks rows in seq order, page by page. The first broken link is named by the seq where the
 * chain stops matching: an edited row fails its own hash; a deleted one leaves a gap; an inserted
 * or reordered one breaks density or the link, or has a seq below 1.
 */
export async function verifyChain(page: (afterSeq: number) => Promise<StoredAuditRow[]>): Promise<ChainCheck> {
  let expectedSeq = 1;
  let previous = GENESIS_HASH;
  for (;;) {
    // The first page starts below 1: a row inserted with seq 0 or -7 is outside the chain, and
    // asking from 0 would never see it while `audit` lists it.
    const rows = await page(expectedSeq === 1 ? Number.MIN_SAFE_INTEGER : expectedSeq - 1);
    if (rows.length === 0) return { ok: true, count: expectedSeq - 1, head: previous };
    for (const row of rows) {
      // SQLite keeps text (or a fraction) in seq, which sorts after every number.
      if (!Number.isSafeInteger(row.seq)) return { ok: false, count: expectedSeq - 1, seq: expectedSeq, problem: `the row after ${expectedSeq - 1} has a seq that is not a whole number: it was edited` };
      if (row.seq < 1) return { ok: false, count: 0, seq: row.seq, problem: `row ${row.seq} is before the first (seq starts at 1): it was inserted` };
      if (row.seq !== expectedSeq) {
        return { ok: false, count: expectedSeq - 1, seq: expectedSeq, problem: row.seq > expectedSeq ? `row ${expectedSeq} is missing (next is ${row.seq})` : `row ${row.seq} is out of order` };
      }
      if (chainHash(previous, row.seq, row) !== row.hash) return { ok: false, count: expectedSeq - 1, seq: row.seq, problem: `row ${row.seq} does not match its hash` };
      previous = row.hash;
      expectedSeq += 1;
    }
  }
}
