// The outage log's pace, on a clock of the test's own: a full line at the first refusal, at most
// one counting line a minute after it, one line at recovery, and a replaced file said once ever.
import { expect, it } from 'vitest';
import { auditLogOutage, FAILING_FOR_MS, OutageLog, SUMMARY_EVERY_MS } from '../../../src/server/state/outage-log.js';
import { AuditSinkError, CommitUnknownError, LockBusyError, StateReplacedError, StateUnavailableError } from '../../../src/server/state/state-errors.js';

function withClock(): { outage: OutageLog; said: string[]; advance(ms: number): void } {
  let now = 1_000_000;
  const said: string[] = [];
  return { outage: new OutageLog((line) => said.push(line), () => now), said, advance: (ms) => void (now += ms) };
}

const down = new StateUnavailableError('the state database postgres://rws:***@db:5432/rws did not answer (ECONNREFUSED)', undefined, 'check the URL');

it('says the first refusal in full, then at most one line a minute, then the recovery once', () => {
  const { outage, said, advance } = withClock();
  outage.answered();
  expect(said).toEqual([]);
  for (let i = 0; i < 100; i++) {
    outage.refused(down);
    advance(500);
  }
  // 100 refusals over 50 s: the first line only.
  expect(said).toEqual(['secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgres://rws:***@db:5432/rws did not answer (ECONNREFUSED) (hint: check the URL)']);
  advance(SUMMARY_EVERY_MS - 50_000);
  outage.refused(down);
  outage.refused(down);
  expect(said.slice(1)).toEqual(['secrets-server: error RWS_STATE_UNAVAILABLE: the state database is still unavailable after 60 s; 101 requests refused so far']);
  advance(SUMMARY_EVERY_MS - 1);
  outage.refused(down);
  expect(said).toHaveLength(2);
  advance(1);
  outage.refused(down);
  expect(said).toHaveLength(3);
  advance(2_500);
  outage.answered();
  outage.answered();
  expect(said.slice(3)).toEqual(['secrets-server: the state database is reachable again after 123 s; 104 requests were refused meanwhile']);
  // The next outage is told in full again.
  outage.refused(down);
  advance(400);
  outage.answered();
  expect(said.slice(4)).toEqual([said[0], 'secrets-server: the state database is reachable again after 0.4 s; 1 request was refused meanwhile']);
});

it('says a commit of unknown outcome in full once an outage, though requests queued behind it were refused first', () => {
  const { outage, said, advance } = withClock();
  const late = new StateUnavailableError('the state database postgres://rws:***@db:5432/rws did not answer in time');
  const unknown = new CommitUnknownError('postgres://rws:***@db:5432/rws');
  for (let i = 0; i < 5; i++) outage.refused(late);
  advance(7_000);
  outage.refused(unknown);
  outage.refused(unknown);
  outage.refused(late);
  expect(said).toHaveLength(2);
  expect(said[1]).toMatch(/^secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgres:\/\/rws:\*\*\*@db:5432\/rws did not answer a commit, and whether it applied could not be told \(it may be waiting for a synchronous standby\) \(hint: whether it applied shows later in the audit trail/);
  // The next outage says it again (its first refusal, the same as the last outage's within a
  // minute, is a relapse: counted, not said again).
  outage.answered();
  outage.refused(late);
  outage.refused(unknown);
  expect(said).toHaveLength(4);
  expect(said[2]).toMatch(/reachable again/);
  expect(said[3]).toBe(said[1]);
});

it('says a replaced state.db once for the life of the process, whether a request or the guard finds it first', () => {
  const { outage, said, advance } = withClock();
  const replaced = new StateReplacedError('/srv/store/state.db', 'deleted');
  outage.replaced(replaced);
  for (let i = 0; i < 10; i++) outage.refused(replaced);
  outage.replaced(replaced);
  expect(said).toHaveLength(1);
  expect(said[0]).toContain('the state database /srv/store/state.db was deleted while this server had it open');
  advance(SUMMARY_EVERY_MS);
  outage.refused(replaced);
  expect(said).toHaveLength(2);
  expect(said[1]).not.toContain('was deleted');
});

it('leaves a lock held by another edit to its request, and escapes what it logs', () => {
  expect(OutageLog.covers(new LockBusyError('sops:prod', 'another edit', 15, 'try again'))).toBe(false);
  expect(OutageLog.covers(down)).toBe(true);
  expect(OutageLog.covers(new Error('x'))).toBe(false);
  const { outage, said } = withClock();
  outage.refused(new StateUnavailableError('cannot open the state database /srv/\u001b[31mstore/state.db: EACCES'));
  expect(said[0]).not.toContain('\u001b');
  expect(said[0]).toContain('\\u001b[31mstore');
});

it('counts folded 429 rows not written apart from refused requests, and names an audit log by its path', () => {
  let now = 0;
  const said: string[] = [];
  const outage = new OutageLog((line) => said.push(line), () => now, auditLogOutage('/var/log/rws/audit.jsonl'));
  const full = new AuditSinkError('the audit log /var/log/rws/audit.jsonl could not be written: no space left on device (ENOSPC)', undefined, 'the file system is full: free some space');
  for (let i = 0; i < 5; i++) outage.refused(full, 'row');
  outage.refused(full);
  now += SUMMARY_EVERY_MS;
  outage.refused(full);
  now += 1_000;
  outage.answered();
  expect(said).toEqual([
    'secrets-server: error RWS_AUDIT_UNAVAILABLE: the audit log /var/log/rws/audit.jsonl could not be written: no space left on device (ENOSPC) (hint: the file system is full: free some space)',
    'secrets-server: error RWS_AUDIT_UNAVAILABLE: the audit log /var/log/rws/audit.jsonl still cannot be written after 60 s; 2 requests refused and 5 folded 429 audit rows not written so far',
    'secrets-server: the audit log /var/log/rws/audit.jsonl is written again after 61 s; 2 requests were refused and 5 folded 429 audit rows not written meanwhile',
  ]);
});

it('is failing from a refusal until a commit goes through, or for at most FAILING_FOR_MS after the last refusal', () => {
  const { outage, advance } = withClock();
  expect(outage.failing()).toBe(false);
  outage.refused(down);
  expect(outage.failing()).toBe(true);
  advance(FAILING_FOR_MS - 1);
  expect(outage.failing()).toBe(true);
  outage.refused(down);
  advance(FAILING_FOR_MS - 1);
  expect(outage.failing()).toBe(true);
  // No request since (a load balancer took the server out): no longer said to be failing.
  advance(1);
  expect(outage.failing()).toBe(false);
  outage.refused(down);
  outage.answered();
  expect(outage.failing()).toBe(false);
});

it('says at a stop in an outage what was refused since its last line, folded 429 rows included', () => {
  const { outage, said, advance } = withClock();
  outage.stopping();
  expect(said).toEqual([]);
  outage.refused(down);
  outage.refused(down);
  advance(1_500);
  // The stop writes the minute's folded rows; those it cannot write are known only now.
  outage.refused(down, 'row');
  outage.refused(down, 'row');
  outage.stopping();
  expect(said.slice(1)).toEqual(['secrets-server: error RWS_STATE_UNAVAILABLE: stopping while the state database is still unavailable after 1.5 s; 2 requests refused and 2 folded 429 audit rows not written']);
  outage.stopping();
  expect(said).toHaveLength(2);
  // Rows alone (the outage began with the stop's own flush): no "0 requests".
  const audit = new OutageLog((line) => said.push(line), () => 0, auditLogOutage('/var/log/rws.jsonl'));
  audit.refused(new AuditSinkError('the audit log /var/log/rws.jsonl cannot be written (ENOSPC)'), 'row');
  audit.stopping();
  expect(said.at(-1)).toBe('secrets-server: error RWS_AUDIT_UNAVAILABLE: stopping while the audit log /var/log/rws.jsonl still cannot be written after 0.0 s; 1 folded 429 audit row not written');
  // Once the outage is over, a stop says nothing.
  const { outage: over, said: quiet } = withClock();
  over.refused(down);
  over.answered();
  over.stopping();
  expect(quiet).toHaveLength(2);
});

it('counts the same failure coming back within a minute of its full line in one line, not two lines a flap', () => {
  const { outage, said, advance } = withClock();
  const full = new StateUnavailableError('the state database /srv/store/state.db could not be written: its file system is full (SQLITE_FULL)', undefined, 'free space');
  const flap = (): void => {
    advance(500);
    outage.refused(full);
    outage.refused(full);
    expect(outage.failing()).toBe(true);
    advance(200);
    outage.answered();
    advance(300);
  };
  outage.refused(full);
  advance(100);
  outage.answered();
  expect(said).toEqual([
    'secrets-server: error RWS_STATE_UNAVAILABLE: the state database /srv/store/state.db could not be written: its file system is full (SQLITE_FULL) (hint: free space)',
    'secrets-server: the state database is reachable again after 0.1 s; 1 request was refused meanwhile',
  ]);
  // A checkpoint frees a page, one commit goes through, the next fails: 50 times in 50 s.
  for (let i = 0; i < 50; i++) flap();
  expect(said).toHaveLength(2);
  for (let i = 0; i < 10; i++) flap();
  expect(said).toHaveLength(2);
  // The minute since the full line is over: the count, then the failure in full again.
  flap();
  expect(said.slice(2)).toEqual([
    'secrets-server: error RWS_STATE_UNAVAILABLE: the same failure came back 60 more times in the 61 s after it was told, each over within 0.2 s; 120 requests were refused meanwhile',
    said[0],
    'secrets-server: the state database is reachable again after 0.2 s; 2 requests were refused meanwhile',
  ]);
  // Another failure is told in full at once, after the count of what came before it.
  flap();
  outage.refused(down);
  outage.answered();
  expect(said.slice(5)).toEqual([
    'secrets-server: error RWS_STATE_UNAVAILABLE: the same failure came back 1 more time in the 1.5 s after it was told, each over within 0.2 s; 2 requests were refused meanwhile',
    'secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgres://rws:***@db:5432/rws did not answer (ECONNREFUSED) (hint: check the URL)',
    'secrets-server: the state database is reachable again after 0.0 s; 1 request was refused meanwhile',
  ]);
});

it('ends a relapse that lasts past its minute as any outage, and counts relapses at a stop', () => {
  const { outage, said, advance } = withClock();
  outage.refused(down);
  outage.answered();
  advance(1_000);
  outage.refused(down);
  advance(SUMMARY_EVERY_MS);
  outage.refused(down);
  expect(said.slice(2)).toEqual(['secrets-server: error RWS_STATE_UNAVAILABLE: the state database is still unavailable after 60 s; 2 requests refused so far']);
  outage.answered();
  expect(said.slice(3)).toEqual(['secrets-server: the state database is reachable again after 60 s; 2 requests were refused meanwhile']);
  outage.refused(down);
  outage.answered();
  advance(500);
  outage.refused(down);
  outage.answered();
  outage.stopping();
  expect(said.slice(4)).toEqual([
    said[0],
    'secrets-server: the state database is reachable again after 0.0 s; 1 request was refused meanwhile',
    'secrets-server: error RWS_STATE_UNAVAILABLE: the same failure came back 1 more time in the 0.5 s after it was told, each over within 0.0 s; 1 request was refused meanwhile',
  ]);
});
