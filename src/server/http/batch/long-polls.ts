// Requests held open by `?wait=` (long-polls): how many may be held, when one is woken, and how
// all of them end at shutdown. A held request is woken when its environment's file may have
// changed (the store's watcher), when the state may have revoked its token (the audit trail moved;
// checked every few seconds), at its deadline, or when the server closes. Each wake asks the
// request whether a fresh request would still get its 304; the request answers (and is charged)
// only when it would not, or at the deadline. A held request keeps its connection busy, so the
// connection cap never closes it as idle; the total bound stays below that cap so that held
// requests can never take every connection.
import { HttpError } from '../http-error.js';

export interface LongPollLimits {
  /** Held at once by this server, all keys together. */
  total: number;
  /** Held at once for one API key (its tokens together). */
  perKey: number;
}

export interface HoldRequest {
  environment: string;
  /** The API key that minted the request's token: the per-key bound. */
  apiKeyId: string;
  /** When to answer at the latest, ms since the epoch. */
  until: number;
  /** Would a fresh request still get its 304 now? Throwing counts as yes (a passing fault). */
  unchanged(): Promise<boolean>;
  /** Given the means to end the hold early (the client hung up). */
  onHeld?(release: () => void): void;
}

export type Watch = (environment: string, listener: () => void) => () => void;

/** Whether the state may have changed since the last call (revocations, expiries). */
export type StateMoved = () => Promise<boolean>;

export const DEFAULT_PER_KEY = 1024;
/** A quarter of the connections stay free for requests that are not held. */
export const heldShareOf = (maxConnections: number): number => Math.max(1, Math.floor((maxConnections * 3) / 4));

const SWEEP_MS = 5_000;
/** Checks run at once: a change seen by 1,000 watchers must not open 1,000 queries at a time. */
const CHECKS_AT_ONCE = 16;

interface Held {
  request: HoldRequest;
  release(): void;
  /** queued: waits for a check slot (and will see any change made meanwhile); running: is checked now. */
  check: 'idle' | 'queued' | 'running';
  again: boolean;
}

export class LongPolls {
  readonly #held = new Set<Held>();
  readonly #perKey = new Map<string, number>();
  readonly #queue: Held[] = [];
  #running = 0;
  #closing = false;
  #sweep: NodeJS.Timeout | undefined;
  #sweeping = false;

  constructor(
    private readonly limits: LongPollLimits,
    private readonly watch: Watch | undefined,
    private readonly stateMoved?: StateMoved,
  ) {}

  get held(): number {
    return this.#held.size;
  }

  /**
   * Resolves when the request should be answered. Throws the 429 (this key holds too many) or the
   * 503 (this server holds too many) before holding anything; resolves at once while closing.
   */
  hold(request: HoldRequest): Promise<void> {
    if (this.#closing || request.until <= Date.now()) return Promise.resolve();
    if ((this.#perKey.get(request.apiKeyId) ?? 0) >= this.limits.perKey) {
      throw new HttpError(429, 'RWS_RATE_LIMITED', `this API key already has ${this.limits.perKey} requests waiting; answer them first`, { 'retry-after': '5' });
    }
    if (this.#held.size >= this.limits.total) {
      throw new HttpError(503, 'RWS_SERVER_BUSY', `this server already holds ${this.limits.total} waiting requests; retry, or ask without wait`, { 'retry-after': '5' });
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let unwatch: (() => void) | undefined;
      const held: Held = {
        request,
        check: 'idle',
        again: false,
        release: () => {
          if (!this.#held.delete(held)) return;
          clearTimeout(timer);
          unwatch?.();
          const left = (this.#perKey.get(request.apiKeyId) ?? 1) - 1;
          if (left > 0) this.#perKey.set(request.apiKeyId, left);
          else this.#perKey.delete(request.apiKeyId);
          if (this.#held.size === 0) this.#stopSweep();
          resolve();
        },
      };
      this.#held.add(held);
      this.#perKey.set(request.apiKeyId, (this.#perKey.get(request.apiKeyId) ?? 0) + 1);
      timer = setTimeout(held.release, Math.max(0, request.until - Date.now()));
      unwatch = this.watch?.(request.environment, () => this.#check(held));
      this.#startSweep();
      request.onHeld?.(held.release);
    });
  }

  /** Answers every held request now (shutdown); later ones are not held. */
  closeAll(): void {
    this.#closing = true;
    for (const held of [...this.#held]) held.release();
  }

  #check(held: Held): void {
    if (!this.#held.has(held) || held.check === 'queued') return;
    if (held.check === 'running') {
      held.again = true; // one more look once this one ends: the change may have come after it read
      return;
    }
    held.check = 'queued';
    this.#queue.push(held);
    this.#drain();
  }

  #drain(): void {
    while (this.#running < CHECKS_AT_ONCE && this.#queue.length > 0) {
      const held = this.#queue.shift() as Held;
      held.check = 'running';
      this.#running++;
      void this.#run(held).finally(() => {
        this.#running--;
        this.#drain();
      });
    }
  }

  async #run(held: Held): Promise<void> {
    let unchanged = true;
    if (this.#held.has(held)) unchanged = await held.request.unchanged().catch(() => true);
    held.check = 'idle';
    if (!unchanged) return held.release();
    if (held.again) {
      held.again = false;
      this.#check(held);
    }
  }

  #startSweep(): void {
    if (this.#sweep !== undefined || this.stateMoved === undefined) return;
    this.#sweep = setInterval(() => void this.#sweepOnce(), SWEEP_MS);
    this.#sweep.unref();
  }

  #stopSweep(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  async #sweepOnce(): Promise<void> {
    if (this.#sweeping || this.stateMoved === undefined) return;
    this.#sweeping = true;
    try {
      if (await this.stateMoved().catch(() => false)) for (const held of this.#held) this.#check(held);
    } finally {
      this.#sweeping = false;
    }
  }
}

/** A StateMoved over the audit trail: every revocation, mint and use adds a row. */
export function auditHeadMoved(state: { queryAudit(query: { limit: number }): Promise<Array<{ seq: number }>> }): StateMoved {
  let last: number | undefined;
  return async () => {
    const seq = (await state.queryAudit({ limit: 1 }))[0]?.seq ?? 0;
    const moved = seq !== last;
    last = seq;
    return moved;
  };
}
