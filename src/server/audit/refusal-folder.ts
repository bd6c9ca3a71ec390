// Rate-limited refusals (429) are counted, not written one by one: one audit row per client
// and minute, with the count, written once the minute is over (and when the server closes).
// A client is what the limiter counts (an IPv4 address or an IPv6 /64, `limitKey`), and the row's
// `client` names it: counted per IPv6 address, a /64 would be 2^64 rows a minute. A flood of
// unauthenticated requests then costs a row a minute, never a disk. What a crash loses is the
// count of the current minute.
//
// One holder has many /64s, though: a /48, what a site is commonly given, is 65,536 of them, and
// was as many rows a minute. So IPv6 rows are bounded by prefix as well, top down, each minute:
// of IPv6 as a whole at most 16 /32s get rows beneath them, of each /32 at most 16 /48s, of each
// /48 at most 16 /64s. A refusal from beyond those is counted in the row of the prefix that had
// no room for it (`2001:db8:9::/48`, `::/0`). A /48 then writes at most 17 rows a minute, a /32
// 273, all of IPv6 4,369. The limiter still counts each /64 on its own; only the rows fold.
// IPv4 keeps one row per address: no one is handed IPv4 addresses by the tens of thousands.
import { widerPrefix } from '../http/limits/client-address.js';
import type { AuditRecord } from './record.js';

const MINUTE_MS = 60_000;

/** Of one prefix, how many prefixes of the next level get rows beneath it in a minute. */
export const ROWS_PER_PREFIX = 16;

/** The levels below IPv6 as a whole (::/0), down to the limiter's /64. */
const LEVELS = [32, 48, 64];

interface Minute {
  /** Refusals counted per row, by the row's client. */
  counts: Map<string, number>;
  /** Of each IPv6 prefix, the prefixes of the next level that have rows beneath it. */
  admitted: Map<string, Set<string>>;
}

export class RefusalFolder {
  readonly #minutes = new Map<number, Minute>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly write: (record: AuditRecord) => Promise<unknown>,
    private readonly onError: (error: unknown) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.#timer = setInterval(() => void this.flush(false), 5_000);
    this.#timer.unref();
  }

  /** `client` is the limiter's key (`limitKey`), never a raw IPv6 address. */
  note(client: string, at: Date): void {
    const start = Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS;
    let minute = this.#minutes.get(start);
    if (minute === undefined) {
      minute = { counts: new Map(), admitted: new Map() };
      this.#minutes.set(start, minute);
    }
    const row = rowOf(minute, client);
    minute.counts.set(row, (minute.counts.get(row) ?? 0) + 1);
  }

  /** Writes the minutes that are over (all of them when `everything`). */
  async flush(everything: boolean): Promise<void> {
    const current = Math.floor(this.now() / MINUTE_MS) * MINUTE_MS;
    const due = [...this.#minutes].filter(([start]) => everything || start < current);
    for (const [start] of due) this.#minutes.delete(start);
    await Promise.all(
      due.flatMap(([start, minute]) =>
        [...minute.counts].map(([client, count]) =>
          this.write({
            time: new Date(start).toISOString(),
            event: 'auth.rate_limited',
            outcome: 'failure',
            status: 429,
            error_code: 'RWS_RATE_LIMITED',
            api_key_id: null,
            jti: null,
            subject: null,
            environment: null,
            keys: null,
            client,
            count,
          }).catch(this.onError),
        ),
      ),
    );
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush(true);
  }
}

/** The row a refusal from `client` is counted in this minute: its own, or a wider prefix's. */
function rowOf(minute: Minute, client: string): string {
  let parent = widerPrefix(client, 0);
  if (parent === undefined) return client;
  for (const bits of LEVELS) {
    const child = widerPrefix(client, bits) as string;
    let admitted = minute.admitted.get(parent);
    if (admitted === undefined) {
      admitted = new Set();
      minute.admitted.set(parent, admitted);
    }
    if (!admitted.has(child)) {
      if (admitted.size >= ROWS_PER_PREFIX) return parent;
      admitted.add(child);
    }
    parent = child;
  }
  return parent;
}
