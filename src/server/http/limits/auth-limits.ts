// Failed authentications, limited twice: per client (an IPv4 address or an IPv6 /64, see
// client-address.ts) and server-wide, because an attacker with many addresses (the whole of
// 127.0.0.0/8 on one host; a /48 of IPv6) never trips a per-address limit.
//
// A limit never locks out a valid credential: a request from a limited client, or while the
// server-wide budget is spent, is let through when it presents a credential that checks out
// cheaply (credential-check.ts). Only the unknown rest is refused with 429, so the expensive and
// guessable path is what gets slowed. Once the server-wide budget is spent, unknown credentials
// still get a trickle of full checks (a few per second, server-wide), so a legitimate client
// with a token the server has not seen since it started still gets in, slowly.
import { limitKey } from './client-address.js';
import { FailureLimiter } from './rate-limit.js';

export interface AuthLimitOptions {
  /** 401s per client per window before that client is limited. */
  perClient?: number;
  /** 401s server-wide per window before every unauthenticated attempt is slowed. */
  serverBudget?: number;
  windowMs?: number;
  /** Full checks of unknown credentials per second while the server-wide budget is spent. */
  tricklePerSecond?: number;
}

export type Admission =
  | { readonly limited: false }
  | { readonly limited: true; readonly scope: 'client' | 'server'; readonly retryAfter: number };

export const DEFAULT_PER_CLIENT = 20;
export const DEFAULT_SERVER_BUDGET = 1000;

export class AuthLimits {
  readonly #clients: FailureLimiter;
  readonly #windowMs: number;
  readonly #budget: number;
  readonly #trickle: number;
  #serverWindow = { start: 0, failures: 0 };
  #trickleSecond = 0;
  #trickleUsed = 0;

  constructor(options: AuthLimitOptions = {}) {
    this.#windowMs = options.windowMs ?? 60_000;
    this.#clients = new FailureLimiter(options.perClient ?? DEFAULT_PER_CLIENT, this.#windowMs);
    this.#budget = options.serverBudget ?? DEFAULT_SERVER_BUDGET;
    this.#trickle = options.tricklePerSecond ?? 5;
  }

  admit(address: string, now: number): Admission {
    const wait = this.#clients.retryAfter(limitKey(address), now);
    if (wait > 0) return { limited: true, scope: 'client', retryAfter: wait };
    if (this.#budgetSpent(now)) return { limited: true, scope: 'server', retryAfter: 1 };
    return { limited: false };
  }

  recordFailure(address: string, now: number): void {
    this.#clients.recordFailure(limitKey(address), now);
    if (now - this.#serverWindow.start >= this.#windowMs) this.#serverWindow = { start: now, failures: 0 };
    this.#serverWindow.failures++;
  }

  /** While the server-wide budget is spent: may one unknown credential be checked in full now? */
  takeTrickle(now: number): boolean {
    const second = Math.floor(now / 1000);
    if (second !== this.#trickleSecond) {
      this.#trickleSecond = second;
      this.#trickleUsed = 0;
    }
    if (this.#trickleUsed >= this.#trickle) return false;
    this.#trickleUsed++;
    return true;
  }

  #budgetSpent(now: number): boolean {
    if (now - this.#serverWindow.start >= this.#windowMs) return false;
    return this.#serverWindow.failures > this.#budget;
  }
}
