// Rate-limited refusals (429) are counted, not written one by one: one audit row per client
// and minute, with the count, written once the minute is over (and when the server closes).
// A client is what the limiter counts (an IPv4 address or an IPv6 /64, `limitKey`), and the row's
// `client` names it: counted per IPv6 address, a /64 would be 2^64 rows a minute. A flood of unauthenticated requests then costs a row a minute, never a disk. What a crash
// loses is the count of the current minute.
import type { AuditRecord } from './record.js';

const MINUTE_MS = 60_000;

export class RefusalFolder {
  readonly #counts = new Map<string, { client: string; minute: number; count: number }>();
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
    const minute = Math.floor(at.getTime() / MINUTE_MS) * MINUTE_MS;
    const key = `${minute} ${client}`;
    const entry = this.#counts.get(key);
    if (entry) entry.count += 1;
    else this.#counts.set(key, { client, minute, count: 1 });
  }

  /** Writes the minutes that are over (all of them when `everything`). */
  async flush(everything: boolean): Promise<void> {
    const current = Math.floor(this.now() / MINUTE_MS) * MINUTE_MS;
    const due = [...this.#counts].filter(([, entry]) => everything || entry.minute < current);
    for (const [key] of due) this.#counts.delete(key);
    await Promise.all(
      due.map(([, entry]) =>
        this.write({
          time: new Date(entry.minute).toISOString(),
          event: 'auth.rate_limited',
          outcome: 'failure',
          status: 429,
          error_code: 'RWS_RATE_LIMITED',
          api_key_id: null,
          jti: null,
          subject: null,
          environment: null,
          keys: null,
          client: entry.client,
          count: entry.count,
        }).catch(this.onError),
      ),
    );
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush(true);
  }
}
