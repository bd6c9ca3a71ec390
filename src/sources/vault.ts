// Secrets from the vault: mint a short-lived token scoped to exactly what this run needs, fetch,
// revoke, all before the child starts. One token per selector (-k pattern or --key name), so no
// token can read more than the run asked for; each is limited to exactly the requests made with
// it. The HTTP client (undici) is loaded only here.
import type { Credential } from '../config/credentials.js';
import { RwsError } from '../errors.js';
import type { FallbackGrant, VaultClient, VaultClientOptions } from '../vault-client/index.js';
import type { LoadContext, SecretSource, Secrets } from './source.js';

export interface VaultSettings {
  client: VaultClientOptions;
  environment: string;
  patterns: readonly string[];
  keys: readonly string[];
  credential: Credential;
  subject: string;
  ttlMinutes: number;
  perKeyRequests: boolean;
  /**
   * --fallback: mint tokens without a usage limit (the vault never lets a usage-limited token's
   * secrets be cached; they are still revoked right after the fetch) and keep what each batch
   * answer says of caching.
   */
  fallback?: boolean;
  /**
   * Where --fallback keeps its copies by default (XDG_STATE_HOME, HOME) and whose they are: a 401
   * removes the refused API key's copies there in every run, with --fallback or without.
   */
  fallbackHome?: { env: Readonly<Record<string, string | undefined>>; uid: number };
}

export interface VaultLoad {
  secrets: Secrets;
  /** The strictest of the batch answers: caching is allowed only if every one allowed it. */
  fallback: FallbackGrant;
}

type Selector = { pattern: string } | { key: string };

export class VaultSource implements SecretSource {
  readonly label: string;
  readonly fromVault = true;

  constructor(readonly settings: VaultSettings) {
    this.label = `vault environment ${settings.environment}`;
  }

  async load(context: LoadContext): Promise<Secrets> {
    try {
      return (await this.loadWithGrant(context)).secrets;
    } catch (error) {
      await this.forgetRefusedKey(error, context);
      throw error;
    }
  }

  /**
   * The secrets, and whether (and until when) the vault lets them be cached. A 401 is left to the
   * caller, to call forgetRefusedKey when it suits: FallbackSource removes its own copy first.
   */
  async loadWithGrant(context: LoadContext): Promise<VaultLoad> {
    const { VaultClient } = await import('../vault-client/index.js');
    const client = await VaultClient.create(this.settings.client);
    const grants: Array<FallbackGrant | undefined> = [];
    const works = this.selectors().map((selector) => this.fetchSelector(client, selector, context, grants));
    try {
      const parts = await Promise.all(works);
      const secrets: Secrets = new Map();
      for (const part of parts) for (const [name, value] of part) secrets.set(name, value);
      context.debug(`read ${secrets.size} secret(s) from ${this.label}`);
      return { secrets, fallback: strictest(grants) };
    } finally {
      closeWhenSettled(client, works, context);
    }
  }

  /** --dry-run: the names in scope, through the list endpoint; no value leaves the vault. */
  async loadNames(context: LoadContext): Promise<string[]> {
    const { VaultClient } = await import('../vault-client/index.js');
    const client = await VaultClient.create(this.settings.client);
    const { environment, credential } = this.settings;
    const works = this.selectors().map((selector) => {
      const pattern = 'pattern' in selector ? selector.pattern : selector.key;
      if (credential.kind === 'token') return client.listKeys(credential.value, environment, pattern);
      // The pattern again, though the token is scoped to it: the answer is then checked against it.
      return this.withToken(client, pattern, 1, context, (token) => client.listKeys(token, environment, pattern));
    });
    try {
      const lists = await Promise.all(works);
      return [...new Set(lists.flat())];
    } catch (error) {
      await this.forgetRefusedKey(error, context);
      throw error;
    } finally {
      closeWhenSettled(client, works, context);
    }
  }

  /**
   * After a 401, the fallback copies made with this API key in the default place go, in a run
   * without --fallback too (src/fallback/revoked-key.ts, loaded only now). Never throws: the run
   * must still fail with the 401, so a removal that fails is one warning that names its error code.
   */
  async forgetRefusedKey(error: unknown, context: LoadContext): Promise<void> {
    const { credential, fallbackHome } = this.settings;
    if (!isKeyRefusal(error) || credential.kind !== 'api-key' || fallbackHome === undefined) return;
    try {
      const { removeRevokedKeyCopies } = await import('../fallback/revoked-key.js');
      const result = await removeRevokedKeyCopies(credential.value, this.settings.client.baseUrl, fallbackHome.env, fallbackHome.uid);
      if (result === undefined || result.removed === 0) return;
      context.warn('RWS_FALLBACK_REMOVED', `the vault refused the API key (RWS_VAULT_AUTH): removed ${result.removed} fallback cop${result.removed === 1 ? 'y' : 'ies'} made with it from ${result.dir}`);
    } catch (failure) {
      const code = (failure as { code?: unknown }).code;
      // Paths and modes only: the key is never in these.
      if (failure instanceof RwsError && code === 'RWS_FALLBACK_NOT_REMOVED') {
        context.warn(code, `the vault refused the API key, but ${failure.message} (${failure.hint})`);
        return;
      }
      context.warn(
        'RWS_FALLBACK_NOT_REMOVED',
        `the vault refused the API key, but the fallback copies made with it could not all be removed (${typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'error'}); run-with-secrets fallback clean removes every copy`,
      );
    }
  }

  /** With neither -k nor --key the whole environment is asked for, as `*`. */
  private selectors(): Selector[] {
    const selectors: Selector[] = [...this.settings.patterns.map((pattern) => ({ pattern })), ...this.settings.keys.map((key) => ({ key }))];
    return selectors.length > 0 ? selectors : [{ pattern: '*' }];
  }

  private async fetchSelector(client: VaultClient, selector: Selector, context: LoadContext, grants: Array<FallbackGrant | undefined>): Promise<Secrets> {
    const { environment } = this.settings;
    const scope = 'pattern' in selector ? selector.pattern : selector.key;
    if (this.settings.credential.kind === 'token') {
      // A token minted elsewhere: its owner decides its scope, uses and revocation.
      return this.fetchWithToken(client, this.settings.credential.value, selector);
    }
    if (this.settings.fallback) {
      return this.withToken(client, scope, null, context, async (token) => {
        const answer = await client.fetchBatchAnswer(token, environment, 'key' in selector ? { keys: [selector.key] } : { pattern: selector.pattern });
        grants.push(answer.fallback);
        return answer.secrets;
      });
    }
    if (this.settings.perKeyRequests && 'pattern' in selector) {
      const names = await this.withToken(client, scope, 1, context, (token) => client.listKeys(token, environment, selector.pattern));
      if (names.length === 0) return new Map();
      return this.withToken(client, scope, names.length, context, (token) => fetchEach(client, token, environment, names));
    }
    return this.withToken(client, scope, 1, context, (token) => this.fetchWithToken(client, token, selector));
  }

  private async fetchWithToken(client: VaultClient, token: string, selector: Selector): Promise<Secrets> {
    const { environment } = this.settings;
    if (this.settings.perKeyRequests && 'key' in selector) {
      return new Map([[selector.key, await client.fetchKey(token, environment, selector.key)]]);
    }
    if (this.settings.perKeyRequests && 'pattern' in selector) {
      return fetchEach(client, token, environment, await client.listKeys(token, environment, selector.pattern));
    }
    return client.fetchBatch(token, environment, 'key' in selector ? { keys: [selector.key] } : { pattern: selector.pattern });
  }

  /**
   * Mints a token for `uses` requests, runs `use`, and revokes the token whatever happened. A stop
   * signal does not wait for `use`: the token is revoked at once (a mint in flight is awaited so
   * that its token can be revoked), and the run waits for that before it exits.
   */
  private withToken<T>(client: VaultClient, keyPattern: string, uses: number | null, context: LoadContext, use: (token: string) => Promise<T>): Promise<T> {
    const work = this.mintUseRevoke(client, keyPattern, uses, context, use);
    context.mustFinish?.(work);
    return work;
  }

  private async mintUseRevoke<T>(client: VaultClient, keyPattern: string, uses: number | null, context: LoadContext, use: (token: string) => Promise<T>): Promise<T> {
    context.stopped?.throwIfAborted();
    const minted = await client.mintToken(this.settings.credential.value, {
      subject: this.settings.subject,
      environment: this.settings.environment,
      keyPattern,
      ttlMinutes: this.settings.ttlMinutes,
      usageLimit: uses,
    });
    context.debug(`minted token ${minted.jti} for ${this.settings.environment}/${keyPattern} (${uses === null ? 'no use limit' : `${uses} use${uses === 1 ? '' : 's'}`}, expires ${minted.expiresAt})`);
    try {
      context.stopped?.throwIfAborted();
      return await untilStopped(use(minted.token), context.stopped);
    } finally {
      try {
        await client.revokeToken(minted.token);
        context.debug(`revoked token ${minted.jti}`);
      } catch (error) {
        context.warn('RWS_REVOKE_FAILED', `could not revoke token ${minted.jti} (${(error as { code?: string }).code ?? 'error'}); it expires at ${minted.expiresAt}`);
      }
    }
  }
}

/**
 * After a successful load every request has ended and every token is revoked, so the connections
 * close while the child starts (≈2 ms saved per run); Node opens sockets close-on-exec, so the
 * child never holds one. After a failure, other selectors may still be running, and the process
 * waits for them before it exits (mustFinish). The client closes only once they have settled: a
 * closed client refuses new requests, so a sibling whose mint answered after the failure (-k A
 * granted, --key B refused) could then neither use nor revoke its token (RWS_REVOKE_FAILED, the
 * token left live until it expired).
 */
function closeWhenSettled(client: VaultClient, works: ReadonlyArray<Promise<unknown>>, context: LoadContext): void {
  void Promise.allSettled(works).then(() =>
    client.close().catch((error: unknown) => context.debug(`closing the vault connections: ${(error as { code?: string }).code ?? 'error'}`)),
  );
}

/** `step`, or the stop signal's reason as soon as it is aborted (the step is left to finish alone). */
function untilStopped<T>(step: Promise<T>, stopped: AbortSignal | undefined): Promise<T> {
  if (!stopped) return step;
  step.catch(() => undefined);
  if (stopped.aborted) return Promise.reject(stopped.reason);
  return new Promise<T>((resolve, reject) => {
    const onStop = (): void => reject(stopped.reason);
    stopped.addEventListener('abort', onStop, { once: true });
    step.then(resolve, reject).finally(() => stopped.removeEventListener('abort', onStop));
  });
}

/**
 * The vault answered 401 to the API key itself (minting a token): it is invalid, revoked or
 * expired. A 401 to a token this run minted speaks of that token only (an admin revoked it, it
 * expired during retries): taken for the key's, it marked a good key refused on this host for
 * ever, and no --fallback run kept a copy again. A revoked key is refused at the next mint.
 * By code and fields, not by class: the vault client is a bundle of its own, loaded lazily. A
 * credential refused before any request (RWS_VAULT_AUTH without a status) is not the vault's word.
 */
function isKeyRefusal(error: unknown): boolean {
  const { status, credential } = error as { status?: unknown; credential?: unknown };
  return error instanceof RwsError && error.code === 'RWS_VAULT_AUTH' && status === 401 && credential === 'API key';
}

function strictest(grants: ReadonlyArray<FallbackGrant | undefined>): FallbackGrant {
  if (grants.length === 0 || grants.some((grant) => grant === undefined || !grant.allowed)) return { allowed: false, notAfter: null };
  const earliest = Math.min(...grants.map((grant) => Date.parse(grant!.notAfter!)));
  return { allowed: true, notAfter: new Date(earliest).toISOString() };
}

/** --per-key-requests: one GET per name, in parallel over the pool. */
async function fetchEach(client: VaultClient, token: string, environment: string, names: readonly string[]): Promise<Secrets> {
  const values = await Promise.all(names.map((name) => client.fetchKey(token, environment, name)));
  return new Map(names.map((name, index) => [name, values[index]!]));
}
