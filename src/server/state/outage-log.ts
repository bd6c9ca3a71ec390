// What a server tells its operator while the state database does not answer. Each refused
// request logged `secrets-server: StateUnavailableError RWS_STATE_UNAVAILABLE`: thousands of
// lines a minute, none saying which database, why, or what to do. Now an outage is told in
// three kinds of line: the first refusal in full (the database's location without its password,
// the cause, the hint), then at most one line a minute counting the refusals, and one line when
// a request's commit goes through again. A state.db replaced under the server never comes back
// (a restart opens the new file), so that message is said once for the process's life, whoever
// finds it first (a request, or the rollback guard's check). The same pace serves the
// `--audit-log` file that cannot be written (a full disk, its directory removed), which logged
// `AuditSinkError RWS_AUDIT_UNAVAILABLE` per request: a log of its own, named by `OutageSubject`.
// Folded 429 rows that could not be written are counted in the same lines, not one line each.
import type { RwsError } from '../../errors.js';
import { printable } from '../../printable.js';
import { redactCredentials } from '../url-credentials.js';
import { ClosedBeforeLockError, CommitUnknownError, LockBusyError, StateReplacedError, StateUnavailableError } from './state-errors.js';

/** The longest a server stays silent while it refuses requests for want of its database. */
export const SUMMARY_EVERY_MS = 60_000;

/**
 * How long after a refused request, with no commit through since, `failing()` holds. Bounded: a
 * load balancer that takes the server out on it sends no request that could end the outage.
 */
export const FAILING_FOR_MS = 10_000;

/** How the counting lines name what is down, and its return. */
export interface OutageSubject {
  still: string;
  back: string;
}

export const STATE_DATABASE: OutageSubject = { still: 'the state database is still unavailable', back: 'the state database is reachable again' };
export const AUDIT_LOG: OutageSubject = auditLogOutage('--audit-log');

/** `file`: the `--audit-log` path, named in every line (the full first line names it too). */
export function auditLogOutage(file: string): OutageSubject {
  return { still: `the audit log ${file} still cannot be written`, back: `the audit log ${file} is written again` };
}

export class OutageLog {
  /** When the first refusal of the current outage was; undefined while the database answers. */
  #since: number | undefined;
  #refused = 0;
  /** Folded 429 rows not written: each stands for many refusals, none of them this outage's. */
  #rows = 0;
  #lastLine = 0;
  #lastRefused = 0;
  #toldReplaced = false;
  /** The code of the current outage's latest refusal, for the line at a stop. */
  #code = '';
  /** The last outage told in full: its first line, code and when. */
  #lastFull: { line: string; code: string; at: number } | undefined;
  /** The outage (its #since) in which a commit of unknown outcome was told in full. */
  #toldUnknown: number | undefined;
  /** The current outage is a relapse of the last one told in full (see refused). */
  #relapse = false;
  /** Relapses over since the last line that counted them. */
  #relapsed = { outages: 0, refused: 0, rows: 0, longest: 0 };

  constructor(
    private readonly log: (line: string) => void,
    private readonly now: () => number = Date.now,
    private readonly subject: OutageSubject = STATE_DATABASE,
  ) {}

  /**
   * Whether `error` is the database failing, which this log counts. A lock another edit holds
   * (or a server closing before it got one) is one request's event, not an outage: logged by
   * its request as before.
   */
  static covers(error: unknown): error is StateUnavailableError {
    return error instanceof StateUnavailableError && !(error instanceof LockBusyError) && !(error instanceof ClosedBeforeLockError);
  }

  /** A request was refused for `error`, or (`row`) a folded 429 audit row could not be written. */
  refused(error: RwsError, what: 'request' | 'row' = 'request'): void {
    const now = this.now();
    this.#lastRefused = now;
    if (what === 'row') this.#rows++;
    else this.#refused++;
    this.#code = error.code;
    if (this.#since === undefined) {
      this.#since = now;
      if (error instanceof StateReplacedError) {
        this.#lastLine = now;
        this.replaced(error);
        return;
      }
      // The same failure again within a minute of its full line: a disk all but full, where each
      // checkpoint frees a page, one commit goes through and the next fails, logged two lines a
      // flap (30 lines in 20 s at 10 requests a second). Counted instead, in one line a minute.
      const line = fullLine(error);
      if (this.#lastFull?.line === line && now - this.#lastFull.at < SUMMARY_EVERY_MS) {
        this.#relapse = true;
        this.#lastLine = this.#lastFull.at;
        return;
      }
      this.#tellRelapses();
      this.#lastLine = now;
      this.#lastFull = { line, code: error.code, at: now };
      this.log(line);
      return;
    }
    // A commit whose outcome could not be told is said in full once an outage, though it comes
    // late in one (requests queued behind it were refused first, as "did not answer in time"):
    // it is the line that says a use may yet be charged, and names the likely cause.
    if (error instanceof CommitUnknownError && this.#toldUnknown !== this.#since) {
      this.#toldUnknown = this.#since;
      this.log(fullLine(error));
      return;
    }
    if (now - this.#lastLine < SUMMARY_EVERY_MS) return;
    this.#lastLine = now;
    this.log(printable(`secrets-server: error ${error.code}: ${this.subject.still} after ${seconds(now - this.#since)} s; ${this.#refused} requests refused${this.#rowsLost()} so far`));
  }

  /**
   * Whether requests are refused now: an outage whose last refusal is under FAILING_FOR_MS old.
   * /healthz says so, where it answered 200 while a full disk or a read-only database refused
   * every commit (its own reads still went through).
   */
  failing(): boolean {
    return this.#since !== undefined && this.now() - this.#lastRefused < FAILING_FOR_MS;
  }

  /**
   * The server stops in an outage: what it refused since the last line is said now, or never.
   * The 429 rows folded until the stop are written at the stop, so their loss is known only here.
   */
  stopping(): void {
    this.#tellRelapses();
    if (this.#since === undefined) return;
    const lost = [
      this.#refused === 0 ? '' : `${this.#refused} request${this.#refused === 1 ? '' : 's'} refused`,
      this.#rows === 0 ? '' : `${this.#rows} folded 429 audit row${this.#rows === 1 ? '' : 's'} not written`,
    ].filter(Boolean);
    this.log(printable(`secrets-server: error ${this.#code}: stopping while ${this.subject.still} after ${seconds(this.now() - this.#since)} s; ${lost.join(' and ')}`));
    this.#since = undefined;
  }

  /** A request's commit went through: the outage, if any, is over. */
  answered(): void {
    if (this.#since === undefined) return;
    // A relapse that lasted long enough to be told as still going is ended as any outage is.
    if (this.#relapse && this.#lastLine === this.#lastFull?.at) {
      const now = this.now();
      this.#relapsed = {
        outages: this.#relapsed.outages + 1,
        refused: this.#relapsed.refused + this.#refused,
        rows: this.#relapsed.rows + this.#rows,
        longest: Math.max(this.#relapsed.longest, now - this.#since),
      };
      this.#since = undefined;
      this.#relapse = false;
      this.#refused = 0;
      this.#rows = 0;
      if (this.#lastFull !== undefined && now - this.#lastFull.at >= SUMMARY_EVERY_MS) this.#tellRelapses();
      return;
    }
    this.#relapse = false;
    this.#tellRelapses();
    this.log(printable(`secrets-server: ${this.subject.back} after ${seconds(this.now() - this.#since)} s; ${this.#refused} request${this.#refused === 1 ? ' was' : 's were'} refused${this.#rowsLost()} meanwhile`));
    this.#since = undefined;
    this.#refused = 0;
    this.#rows = 0;
  }

  /** One line for the relapses counted since the last full line, if any; the next failure is told in full. */
  #tellRelapses(): void {
    const { outages, refused, rows, longest } = this.#relapsed;
    if (outages === 0 || this.#lastFull === undefined) return;
    const lost = rows === 0 ? '' : ` and ${rows} folded 429 audit row${rows === 1 ? '' : 's'} not written`;
    this.log(
      printable(
        `secrets-server: error ${this.#lastFull.code}: the same failure came back ${outages} more time${outages === 1 ? '' : 's'} in the ${seconds(this.now() - this.#lastFull.at)} s after it was told, each over within ${seconds(longest)} s; ${refused} request${refused === 1 ? ' was' : 's were'} refused${lost} meanwhile`,
      ),
    );
    this.#relapsed = { outages: 0, refused: 0, rows: 0, longest: 0 };
    this.#lastFull = undefined;
  }

  #rowsLost(): string {
    return this.#rows === 0 ? '' : ` and ${this.#rows} folded 429 audit row${this.#rows === 1 ? '' : 's'} not written`;
  }

  /** The SQLite file replaced under the server: said once, since only a restart ends it. */
  replaced(error: StateReplacedError): void {
    if (this.#toldReplaced) return;
    this.#toldReplaced = true;
    this.log(fullLine(error));
  }
}

/** The error as the commands print it; its message names the database without a password. */
export function fullLine(error: RwsError): string {
  return printable(redactCredentials(`secrets-server: error ${error.code}: ${error.message}${error.hint === undefined ? '' : ` (hint: ${error.hint})`}`));
}

/** Tenths under ten seconds: a restart's outage of 400 ms read as "after 0 s". */
function seconds(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  return s < 10 ? s.toFixed(1) : String(Math.round(s));
}
