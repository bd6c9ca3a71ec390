// The one place that talks HTTP: an undici Pool for the vault's origin (keep-alive), timeouts for
// connect, headers and body and a deadline for the whole answer, jittered retries for connection
// failures and 502/503/504 only, and no redirects (a redirect could carry the credential to
// another origin).
import type { Dispatcher } from 'undici';
import { readErrorAnswer, readJsonBody } from './body.js';
import type { Refusal } from './refusal.js';
import { ANSWER_DEADLINE, classifyNetworkError, type NetworkFailure, networkError } from './network-errors.js';
import { InstallError } from '../errors.js';
import { codeCache, missingFiles, Pool, type PoolClass } from './undici.js';

const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 2000;
const RETRYABLE_STATUS = new Set([502, 503, 504]);
/** Enough for --per-key-requests in parallel without opening a socket per key. */
const MAX_CONNECTIONS = 16;
/**
 * undici's headers and body timeouts are idle timeouts: a byte of body, a 1xx answer, rearms them,
 * so a vault that drips its answer would hold a cron run for ever. Each attempt must therefore end
 * within connect + headers + body, each --timeout (plus a long-poll's hold), plus a second: undici's
 * own timers fire up to a second late (its timers.js RESOLUTION_MS), and a silent server should
 * still be told apart from a slow one by the phase it stopped in.
 */
function answerDeadlineMs(timeoutMs: number, holdMs = 0): number {
  return 3 * timeoutMs + holdMs + 1000;
}

export interface TransportOptions {
  origin: string;
  prefix: string;
  timeoutMs: number;
  retries: number;
  /** PEM of the only CAs to trust; Node's bundled roots when absent. */
  ca?: string;
  debug?: (message: string) => void;
  /** Draws (or, with undefined, erases) a line saying what a slow request waits for. */
  progress?: ((text: string | undefined) => void) | undefined;
}

/** A request that has not answered after this long is named on the terminal. */
const PROGRESS_AFTER_MS = 1000;

export interface VaultRequest {
  method: 'GET' | 'POST';
  /** Path below the URL prefix, already encoded; may hold a query. */
  path: string;
  credential?: string;
  json?: unknown;
  /** Extra request headers (If-None-Match for a watch); never a credential. */
  headers?: Record<string, string>;
  /** A long-poll: how long the server may hold the answer, on top of the usual timeout. */
  holdMs?: number;
  /** Ends a held request early (the watch stops). */
  signal?: AbortSignal;
}

export interface VaultResponse {
  status: number;
  /** The parsed JSON of a 2xx answer (undefined for 204); undefined otherwise. */
  body: unknown;
  /** The server's error code of a failed answer, when safe to repeat. */
  serverCode: string | undefined;
  /** What a 403/404 said about the fix, in checked names. */
  refusal?: Refusal | undefined;
  attempts: number;
  /** The answer's ETag, when it had one that reads as an entity tag. */
  etag?: string | undefined;
}

type Outcome = { ok: true; response: VaultResponse } | { ok: false; failure: NetworkFailure | undefined; cause: unknown };

export class Transport {
  private readonly pool: PoolClass;
  private closed = false;
  /** Slow requests now shown on the progress line, newest last. */
  private readonly waiting: string[] = [];

  constructor(private readonly options: TransportOptions) {
    if (missingFiles.length > 0) throw new InstallError(missingFiles);
    this.pool = new Pool(options.origin, {
      // Explicit, so NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment cannot turn verification off.
      connect: { timeout: options.timeoutMs, rejectUnauthorized: true, ...(options.ca === undefined ? {} : { ca: options.ca }) },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connections: MAX_CONNECTIONS,
      // Explicit, so that undici never asks node:http for its default (the bundle leaves it out).
      maxHeaderSize: 16 * 1024,
    });
    // Anything but 'used' (or 'unbundled', from source) is slower, not wrong: 'stale' is another node
    // binary or another build, 'rejected' other V8 flags, 'absent' an install without the cache.
    this.debug(`undici code cache ${codeCache}`);
  }

  async send(request: VaultRequest): Promise<VaultResponse> {
    if (this.closed) throw new Error('VaultClient used after close()');
    const total = this.options.retries + 1;
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      const waitingFor = `waiting for the vault at ${this.options.origin} (${request.method} ${this.options.prefix}${request.path}, attempt ${attempt}/${total})`;
      const slow = this.options.progress ? setTimeout(() => this.showWaiting(waitingFor), PROGRESS_AFTER_MS) : undefined;
      const outcome = await this.attempt(request, attempt)
        .catch((error: unknown) => {
          this.debug(`${request.method} ${this.options.prefix}${request.path} attempt ${attempt}/${total}: ${(error as { code?: string }).code ?? 'error'}`);
          throw error;
        })
        .finally(() => {
          clearTimeout(slow);
          this.doneWaiting(waitingFor);
        });
      const result = outcome.ok ? String(outcome.response.status) : (outcome.failure?.code ?? 'error');
      this.debug(`${request.method} ${this.options.prefix}${request.path} attempt ${attempt}/${total}: ${result} in ${Date.now() - started} ms`);
      const retryable = outcome.ok ? RETRYABLE_STATUS.has(outcome.response.status) : outcome.failure?.retryable === true;
      if (retryable && attempt < total) {
        await this.backoff(attempt);
        continue;
      }
      if (outcome.ok) return outcome.response;
      throw networkError(outcome.failure, outcome.cause, this.options.origin, attempt, { timeoutMs: this.options.timeoutMs, deadlineMs: answerDeadlineMs(this.options.timeoutMs, request.holdMs) });
    }
  }

  private showWaiting(text: string): void {
    this.waiting.push(text);
    this.options.progress?.(text);
  }

  private doneWaiting(text: string): void {
    const index = this.waiting.indexOf(text);
    if (index === -1) return;
    this.waiting.splice(index, 1);
    this.options.progress?.(this.waiting[this.waiting.length - 1]);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.close();
  }

  private async attempt(request: VaultRequest, attempt: number): Promise<Outcome> {
    // Aborting the request also destroys its body stream, so this bounds the reading below too.
    const deadlineMs = answerDeadlineMs(this.options.timeoutMs, request.holdMs);
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(deadlineError(deadlineMs)), deadlineMs);
    // Forwarded by hand rather than with AbortSignal.any: a watch's signal lives for days, and
    // Node 20 adds a WeakRef per combined signal to each source and never prunes them.
    const stop = (): void => abort.abort(request.signal?.reason);
    if (request.signal?.aborted) stop();
    request.signal?.addEventListener('abort', stop, { once: true });
    try {
      return await this.exchange(request, attempt, abort.signal);
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', stop);
    }
  }

  private async exchange(request: VaultRequest, attempt: number, signal: AbortSignal): Promise<Outcome> {
    let response: Dispatcher.ResponseData;
    try {
      response = await this.pool.request(this.dispatchOptions(request, signal));
    } catch (cause) {
      return { ok: false, failure: classifyNetworkError(cause, 'request'), cause };
    }
    try {
      const { statusCode: status } = response;
      const success = status >= 200 && status < 300;
      const etag = entityTag(response.headers.etag);
      if (status === 304) {
        // Not modified: no body to read, the tag is all there is.
        response.body.resume();
        return { ok: true, response: { status, body: undefined, serverCode: undefined, attempts: attempt, etag } };
      }
      const body = success ? await readJsonBody(response, this.options.origin) : undefined;
      const answer = success ? undefined : await readErrorAnswer(response);
      // undici gives a finished connection back to the pool in the next check phase: a request
      // made before then (mint, then batch, then revoke) would open another connection.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return { ok: true, response: { status, body, serverCode: answer?.code, refusal: answer?.refusal, attempts: attempt, etag } };
    } catch (cause) {
      const failure = classifyNetworkError(cause, 'body');
      if (failure === undefined) throw cause;
      return { ok: false, failure, cause };
    }
  }

  private dispatchOptions(request: VaultRequest, signal: AbortSignal): Dispatcher.RequestOptions {
    const headers: Record<string, string> = { ...request.headers, accept: 'application/json', 'user-agent': 'run-with-secrets' };
    if (request.credential !== undefined) headers.authorization = `Bearer ${request.credential}`;
    let body: string | undefined;
    if (request.json !== undefined) {
      body = JSON.stringify(request.json);
      headers['content-type'] = 'application/json';
    }
    const held = request.holdMs === undefined ? {} : { headersTimeout: this.options.timeoutMs + request.holdMs };
    return { method: request.method, path: `${this.options.prefix}${request.path}`, headers, body, ...held, signal };
  }

  /** Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spreads retrying clients apart. */
  private async backoff(attempt: number): Promise<void> {
    const delay = Math.round(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1)));
    this.debug(`retrying in ${delay} ms`);
    const { setTimeout: sleep } = await import('node:timers/promises');
    await sleep(delay);
  }

  private debug(message: string): void {
    this.options.debug?.(`vault: ${message}`);
  }
}

function deadlineError(deadlineMs: number): Error {
  return Object.assign(new Error(`no complete answer within ${deadlineMs} ms`), { code: ANSWER_DEADLINE });
}

/** RFC 9110 §8.8.3 entity-tag, at most 256 characters; anything else is ignored, never echoed. */
export function entityTag(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string' || value.length > 256) return undefined;
  return /^(W\/)?"[\x21\x23-\x7e]*"$/.test(value) ? value : undefined;
}
