// Refreshes from the vault for --watch: one loop per selector (-k pattern or --key name), each
// refresh its own narrowly scoped token (mint, batch, revoke: three audit rows), the answer's
// ETag sent back as If-None-Match so that an unchanged answer is a bodiless 304, and `?wait=` so
// that a server that long-polls answers as soon as the answer changes. A server that sends no
// ETag is polled every --watch-interval and the values compared here. Failures never stop the
// child: the loop waits with jittered backoff (at most 60 s) and says so once per state change
// (Infisical#2962 hung for ever, Doppler went silent). 401/403 to the credential ends
// refreshing: revoked.
import { RwsError } from '../errors.js';
import type { VaultClient, VaultError } from '../vault-client/index.js';
import type { LoadContext, Secrets } from '../sources/source.js';
import type { VaultSettings, VaultSource } from '../sources/vault.js';
import { Backoff } from './backoff.js';
import type { RefreshLog } from './refresh-log.js';

type Selector = { pattern: string } | { key: string };

const MAX_WAIT_S = 60;
/** After an answer that changed, the next request waits about this long (then longer if it keeps changing). */
const AFTER_CHANGE_MS = 400;
/** A hold shorter than asked by more than this ended early. */
const EARLY_SLACK_MS = 1000;

export interface VaultFeedOptions {
  intervalMs: number;
  log: RefreshLog;
  debug(message: string): void;
  /** For what outlives the refreshes' own quiet: the removal of a refused key's fallback copies. */
  warn(code: string, message: string): void;
  /** Some part of the answer changed: the debounce starts (or restarts). */
  changed(reason: string): void;
  /** The credential was refused (401/403): refreshing has stopped. */
  revoked(error: VaultError): void;
}

interface Answer {
  /** Undefined when unchanged (304). */
  secrets: Secrets | undefined;
  etag: string | undefined;
  /** The seconds the server was asked to hold the request (0: not a long-poll). */
  heldFor: number;
}

interface Part {
  selector: Selector;
  secrets: Secrets;
  etag: string | undefined;
  /** False once the server showed it does not tag its answers (an older server): plain polling. */
  tagged: boolean;
}

export class VaultFeed {
  private client: VaultClient | undefined;
  private parts: Part[] = [];
  private readonly stopper = new AbortController();
  private readonly running: Array<Promise<void>> = [];
  private readonly settings: VaultSettings;

  constructor(
    private readonly source: VaultSource,
    private readonly options: VaultFeedOptions,
  ) {
    this.settings = source.settings;
  }

  /** The first fetch, before the first child: every selector once, tags kept. */
  async initial(context: LoadContext): Promise<Secrets> {
    try {
      return await this.fetchInitial(context);
    } catch (error) {
      await this.source.forgetRefusedKey(error, context);
      throw error;
    }
  }

  private async fetchInitial(context: LoadContext): Promise<Secrets> {
    const { VaultClient } = await import('../vault-client/index.js');
    // No retries inside a refresh: the backoff below decides when to try again.
    this.client = await VaultClient.create({ ...this.settings.client, retries: 0 });
    if (this.settings.perKeyRequests) {
      // One GET per key has no tag to send back: the whole load again each time, compared here.
      const { secrets } = await this.source.loadWithGrant(context);
      this.parts = [{ selector: { pattern: '*' }, secrets, etag: undefined, tagged: false }];
      return secrets;
    }
    const initialClient = await VaultClient.create(this.settings.client);
    try {
      this.parts = await Promise.all(
        this.selectors().map(async (selector) => {
          const answer = await this.refreshOnce(initialClient, { selector, secrets: new Map(), etag: undefined, tagged: true }, false, context);
          return { selector, secrets: answer.secrets ?? new Map(), etag: answer.etag, tagged: answer.etag !== undefined };
        }),
      );
    } finally {
      initialClient.close().catch(() => undefined);
    }
    return this.latest();
  }

  start(): void {
    for (const part of this.parts) this.running.push(this.loop(part));
  }

  /** What the vault holds now, as the selectors together see it. */
  latest(): Secrets {
    const merged: Secrets = new Map();
    for (const part of this.parts) for (const [name, value] of part.secrets) merged.set(name, value);
    return merged;
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.all(this.running);
    await this.client?.close().catch(() => undefined);
  }

  private async loop(part: Part): Promise<void> {
    const backoff = new Backoff();
    const early = new Backoff();
    const flapping = new Backoff(Math.random, AFTER_CHANGE_MS);
    const stopped = this.stopper.signal;
    const context: LoadContext = { warn: () => undefined, debug: this.options.debug, stopped };
    // A tagged answer is long-polled at once (the held request is the wait); an untagged server
    // is asked again after the interval.
    let delay = part.tagged ? 0 : this.options.intervalMs;
    let tokenRetried = false;
    while (!stopped.aborted) {
      if (delay > 0) await sleep(delay, stopped);
      if (stopped.aborted) return;
      const started = performance.now();
      try {
        const answer = await this.refresh(part, context);
        backoff.reset();
        tokenRetried = false;
        this.options.log.ok(this.label(part));
        if (answer.secrets !== undefined && !sameSecrets(answer.secrets, part.secrets)) {
          part.secrets = answer.secrets;
          part.etag = answer.etag;
          this.options.changed(this.label(part));
          // Soon again, to see the rest of a burst; but an answer that changes every time (a
          // flapping or hostile server) is asked less and less often, never in a loop.
          delay = Math.min(flapping.next(), this.options.intervalMs);
          continue;
        }
        part.etag = answer.etag ?? part.etag;
        flapping.reset();
        // After a held request, the rest of the interval (none when the interval is at most 60 s).
        // A hold that ended early, unchanged (the server shutting down, a token's end, a server
        // that does not hold) is followed by a short jittered wait that grows to the interval:
        // a restarted server is asked again soon, one that never holds is not asked in a loop.
        const held = performance.now() - started;
        if (!part.tagged) delay = this.options.intervalMs;
        else if (held + EARLY_SLACK_MS < answer.heldFor * 1000) delay = Math.min(early.next(), this.options.intervalMs);
        else {
          early.reset();
          delay = Math.max(0, this.options.intervalMs - held);
        }
      } catch (error) {
        if (stopped.aborted) return;
        // Only our own errors are quoted: another error's message may hold what it was given.
        const known = error instanceof RwsError ? error : undefined;
        const code = known?.code ?? 'RWS_INTERNAL';
        // Its own token refused: asked again at once with a new one, whose mint says whether the
        // API key is refused too (a revoked key's tokens go with it); only a second refusal is said.
        if (this.ownTokenRefused(error) && !tokenRetried) {
          tokenRetried = true;
          delay = 0;
          this.options.debug(`vault: ${this.label(part)}: the vault refused this refresh's own token (${(error as VaultError).serverCode ?? 'no code'}); asking again with a new one`);
          continue;
        }
        if ((code === 'RWS_VAULT_AUTH' || code === 'RWS_VAULT_FORBIDDEN') && !this.ownTokenRefused(error)) {
          await this.source.forgetRefusedKey(error, { warn: this.options.warn, debug: this.options.debug });
          this.options.revoked(error as VaultError);
          this.stopper.abort();
          return;
        }
        delay = backoff.next();
        this.options.log.failing(this.label(part), code, known?.message ?? 'internal error', delay);
      }
    }
  }

  /**
   * A 401 to the one-use token this refresh minted (an admin revoked it from the token list, it
   * expired) says nothing of the API key: the next refresh mints another, and a key that is
   * refused now is refused there. Taken for a revocation, it stopped a healthy child (exit 77).
   */
  private ownTokenRefused(error: unknown): boolean {
    const { status, credential } = error as { status?: unknown; credential?: unknown };
    return this.settings.credential.kind === 'api-key' && status === 401 && credential === 'token';
  }

  private async refresh(part: Part, context: LoadContext): Promise<Answer> {
    // Not load(): it would remove a refused key's copies with this loop's silent warn; loop() does.
    if (this.settings.perKeyRequests) return { secrets: (await this.source.loadWithGrant(context)).secrets, etag: undefined, heldFor: 0 };
    const answer = await this.refreshOnce(this.client!, part, part.tagged, context);
    if (answer.secrets !== undefined && answer.etag === undefined && part.tagged) {
      part.tagged = false;
      this.options.debug(`vault: ${this.label(part)}: the server sends no ETag, so it is asked every ${this.options.intervalMs / 1000}s and the values compared here`);
    }
    return answer;
  }

  /** One refresh: mint a one-use token (or use the given one), ask, revoke. */
  private async refreshOnce(client: VaultClient, part: Part, hold: boolean, context: LoadContext): Promise<Answer> {
    const { credential, environment } = this.settings;
    const selector = part.selector;
    const batchSelector = 'key' in selector ? { keys: [selector.key] } : { pattern: selector.pattern };
    const timeoutS = this.settings.client.timeoutMs / 1000;
    const wantWait = hold ? Math.min(MAX_WAIT_S, Math.max(1, Math.floor(this.options.intervalMs / 1000))) : 0;
    const ask = async (token: string, waitSeconds: number): Promise<Answer> => {
      const answer = await client.fetchBatchWatched(token, environment, batchSelector, { etag: part.etag, waitSeconds, signal: context.stopped });
      return answer.changed ? { secrets: answer.secrets, etag: answer.etag, heldFor: waitSeconds } : { secrets: undefined, etag: answer.etag, heldFor: waitSeconds };
    };
    if (credential.kind === 'token') return ask(credential.value, wantWait);
    const keyPattern = 'key' in selector ? selector.key : selector.pattern;
    // The token must outlive the held request: its lifetime covers the wait and the timeout.
    const ttlMinutes = Math.max(this.settings.ttlMinutes, Math.ceil((wantWait + timeoutS + 5) / 60));
    const minted = await client.mintToken(credential.value, { subject: this.settings.subject, environment, keyPattern, ttlMinutes, usageLimit: 1 });
    try {
      // The server may cap the lifetime (the key's --max-ttl): hold no longer than the token lives.
      const left = Math.floor((Date.parse(minted.expiresAt) - Date.now()) / 1000) - timeoutS - 2;
      return await ask(minted.token, Math.max(0, Math.min(wantWait, left)));
    } finally {
      // Awaited, so that the three audit rows of one refresh come in order; a stop waits for it too.
      const revoke = client.revokeToken(minted.token).then(
        () => context.debug(`vault: revoked token ${minted.jti}`),
        (error: unknown) => context.debug(`vault: could not revoke token ${minted.jti} (${(error as { code?: string }).code ?? 'error'}); it expires at ${minted.expiresAt}`),
      );
      context.mustFinish?.(revoke);
      await revoke;
    }
  }

  private label(part: Part): string {
    const selector = part.selector;
    return `vault environment ${this.settings.environment} (${'key' in selector ? `key ${selector.key}` : `pattern ${selector.pattern}`})`;
  }

  private selectors(): Selector[] {
    const selectors: Selector[] = [...this.settings.patterns.map((pattern) => ({ pattern })), ...this.settings.keys.map((key) => ({ key }))];
    return selectors.length > 0 ? selectors : [{ pattern: '*' }];
  }
}

function sameSecrets(a: Secrets, b: Secrets): boolean {
  if (a.size !== b.size) return false;
  for (const [name, value] of a) if (b.get(name) !== value) return false;
  return true;
}

function sleep(ms: number, stopped: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (stopped.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      stopped.removeEventListener('abort', done);
      resolve();
    }
    stopped.addEventListener('abort', done, { once: true });
  });
}
