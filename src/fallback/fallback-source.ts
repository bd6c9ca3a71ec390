// --fallback and --offline: the vault source, with an encrypted copy of its last answer that may
// stand in for it while it is away. The rules, in the order they apply:
// - online and answered: the copy is rewritten (or removed, when the vault forbids caching), and
//   the runs served offline since are reported to the vault;
// - refused (401, 403, 404): the copy is removed and the run fails as it would have without it;
// - away (connection refused or reset, DNS, timeout, 502/503/504), or --offline: the copy is used
//   if it opens with this API key, is this job's, and is within its dates; anything wrong with it
//   is a refusal with its own code, and nothing else is tried;
// - any other failure (TLS, a malformed answer, 400, 429, 500) fails the run and leaves the copy.
import { formatDuration } from '../duration.js';
import { FallbackError } from '../errors.js';
import { processIsRunning } from '../inject/placement.js';
import type { LoadContext, SecretSource, Secrets } from '../sources/source.js';
import type { VaultLoad, VaultSource } from '../sources/vault.js';
import type { VaultClientOptions } from '../vault-client/index.js';
import type { CacheFile, CacheIdentity } from './cache-file.js';
import { type FallbackClock, isAvailabilityFailure, isRefusal, judgeCache } from './cache-policy.js';
import { directoryFailure } from './directory-failure.js';
import type { UseQueue } from './use-queue.js';

export interface FallbackSettings {
  cache: CacheFile;
  queue: UseQueue;
  identity: CacheIdentity;
  apiKey: string;
  offline: boolean;
  maxAgeSeconds: number;
  clock: FallbackClock;
  /** The run's subject, for the offline-use report. */
  subject: string;
  /** To report offline uses after a successful fetch. */
  client: VaultClientOptions;
}

export class FallbackSource implements SecretSource {
  readonly label: string;
  /** --offline never asks the vault, so no credential of it can be refused. */
  readonly fromVault: boolean;

  constructor(
    private readonly vault: VaultSource,
    private readonly settings: FallbackSettings,
  ) {
    this.label = vault.label;
    this.fromVault = !settings.offline;
  }

  async load(context: LoadContext): Promise<Secrets> {
    if (this.settings.offline) return this.fromCache(context, undefined, true);
    let answer: VaultLoad;
    // The host's real clock, as the refused mark's mtime is (not the test hook's).
    const askedAt = Date.now();
    try {
      answer = await this.vault.loadWithGrant(context);
    } catch (error) {
      if (isRefusal(error)) {
        await this.forget(error, context);
        throw error;
      }
      if (!isAvailabilityFailure(error)) throw error;
      return this.fromCache(context, error as Error & { code: string }, true);
    }
    await this.keep(answer, askedAt, context);
    await this.reportOfflineUses(context);
    return answer.secrets;
  }

  /**
   * A refusal removes this job's copy. A 401 refuses the API key itself (revoked, expired): then
   * every copy made with it in the default place goes too, as in a run without --fallback, or
   * another job of the same key would still run from its copy during the next outage, after this
   * host has heard of the revocation.
   */
  private async forget(error: unknown, context: LoadContext): Promise<void> {
    const { cache } = this.settings;
    if (await cache.remove().catch(() => false)) context.warn('RWS_FALLBACK_REMOVED', `the vault refused (${(error as { code: string }).code}): removed the fallback cache ${cache.path}`);
    await this.vault.forgetRefusedKey(error, context);
  }

  /** --dry-run: names from the vault's list endpoint, or from the cache offline (not counted as a use). */
  async loadNames(context: LoadContext): Promise<string[]> {
    if (this.settings.offline) return [...(await this.fromCache(context, undefined, false)).keys()];
    return this.vault.loadNames(context);
  }

  private async fromCache(context: LoadContext, outage: (Error & { code: string }) | undefined, countUse: boolean): Promise<Secrets> {
    const { cache, apiKey, identity, maxAgeSeconds, clock } = this.settings;
    let opened;
    try {
      opened = await cache.read(apiKey, identity);
    } catch (error) {
      throw duringOutage(error, outage);
    }
    if (opened === undefined) {
      if (outage !== undefined) {
        context.warn('RWS_FALLBACK_MISSING', `no fallback cache at ${cache.path} (a successful run with --fallback writes one)`);
        throw outage;
      }
      throw new FallbackError('RWS_FALLBACK_MISSING', `--offline: there is no fallback cache at ${cache.path}`, 'run once with --fallback while the vault is reachable; it writes the cache');
    }
    let standing;
    try {
      standing = judgeCache(opened.metadata, maxAgeSeconds, clock, cache.path);
    } catch (error) {
      // Past the vault's limit the copy is of no use to anyone: it goes.
      if ((error as { code?: unknown }).code === 'RWS_FALLBACK_EXPIRED') await cache.remove().catch(() => undefined);
      throw duringOutage(error, outage);
    }
    const why = outage === undefined ? '--offline' : `the vault is unavailable (${outage.code})`;
    context.warn(
      'RWS_FALLBACK_USED',
      `${why}: using the fallback cache fetched ${formatDuration(standing.ageSeconds)} ago, usable for ${formatDuration(standing.leftSeconds)} more (until ${standing.until.toISOString()}); ${cache.path}`,
    );
    if (countUse) await this.queueUse(opened.secrets, context);
    return opened.secrets;
  }

  /** A use not queued would go unaudited: say so, but let the run go on (the vault is away, not the disk's fault). */
  private async queueUse(secrets: Secrets, context: LoadContext): Promise<void> {
    const use = { subject: this.settings.subject, environment: this.settings.identity.environment, keys: [...secrets.keys()].sort(), used_at: this.settings.clock.now().toISOString() };
    try {
      await this.settings.queue.add(use, this.settings.clock.now());
    } catch (error) {
      // A refused directory says which fix; an errno is enough for the rest (ENOSPC, EROFS).
      const why = error instanceof FallbackError ? `: ${error.message} (${error.hint})` : ` (${(error as { code?: string }).code ?? 'error'})`;
      context.warn('RWS_FALLBACK_NOT_RECORDED', `could not queue this offline use for the vault's audit log in ${this.settings.queue.dir}${why}`);
    }
  }

  private async keep(answer: VaultLoad, askedAt: number, context: LoadContext): Promise<void> {
    const { cache, identity, apiKey, clock } = this.settings;
    const grant = answer.fallback;
    if (!grant.allowed || grant.notAfter === null) {
      const removed = await cache.remove().catch(() => false);
      context.warn('RWS_FALLBACK_NOT_ALLOWED', `the vault does not let these secrets be cached (a --no-fallback API key, or an older secrets-server); no fallback cache is kept${removed ? ` (removed ${cache.path})` : ''}`);
      return;
    }
    const fetchedAt = clock.now();
    if (Date.parse(grant.notAfter) <= fetchedAt.getTime()) {
      context.warn('RWS_FALLBACK_NOT_WRITTEN', `the vault's fallback limit ${grant.notAfter} has already passed by this host's clock; no fallback cache written`);
      return;
    }
    const metadata = {
      version: 1,
      url: identity.url,
      environment: identity.environment,
      selection: identity.selection,
      key_id: identity.keyId,
      fetched_at: fetchedAt.toISOString(),
      not_after: new Date(grant.notAfter).toISOString(),
    };
    try {
      if ((await cache.write(metadata, answer.secrets, apiKey, askedAt)) === 'refused') {
        context.warn('RWS_FALLBACK_NOT_WRITTEN', `the vault has refused this API key in another run on this host since this one fetched; no fallback cache is kept at ${cache.path}`);
        return;
      }
      context.debug(`fallback cache written to ${cache.path}, usable until ${metadata.not_after} at the latest`);
    } catch (error) {
      // The run itself is fine: it fails only when the vault is away and there is no copy. A
      // refused or unreachable directory says why and the fix now, not at the outage.
      if (error instanceof FallbackError) context.warn('RWS_FALLBACK_NOT_WRITTEN', `${error.message}; no new copy written, the previous one, if any, stays (${error.hint})`);
      else context.warn('RWS_FALLBACK_NOT_WRITTEN', `could not write the fallback cache ${cache.path} (${(error as { code?: string }).code ?? 'error'}); the previous one, if any, stays`);
    }
  }

  /**
   * Never fails the run: it has its secrets from the vault, and failing it would report nothing
   * either. Whatever keeps the uses from the vault is one warning with the fix; they stay queued.
   */
  private async reportOfflineUses(context: LoadContext): Promise<void> {
    const { queue } = this.settings;
    try {
      await this.sendOfflineUses(context);
    } catch (error) {
      const { reason, hint } = await directoryFailure(queue.dir, queue.uid, error, { fix: `chmod 700 ${queue.dir}` });
      context.warn('RWS_FALLBACK_NOT_REPORTED', `the offline uses queued in ${queue.dir} cannot be reported: ${reason}; they stay queued (${hint})`);
    }
  }

  private async sendOfflineUses(context: LoadContext): Promise<void> {
    const { queue, cache } = this.settings;
    const waiting = await queue.count();
    if (waiting === 0) return;
    const { VaultClient } = await import('../vault-client/index.js');
    const client = await VaultClient.create(this.settings.client);
    try {
      const forGood = (failure: unknown): boolean => [400, 403, 404].includes((failure as { status?: number }).status ?? 0);
      let outcome;
      try {
        // The queue sits beside the copy: where others may rename entries, another key's queue
        // could be put in its place, to be reported as this key's uses.
        await cache.checkDirectory();
        // A reporter killed holding a claim answers kill(0) as a zombie until its parent reaps it
        // (a script busy with its next command, a stopped one): it will never send that use.
        outcome = await queue.report((use) => client.reportOfflineUse(this.settings.apiKey, use), processIsRunning, forGood);
      } catch (error) {
        // Every run says why until the directory is fixed.
        if (!(error instanceof FallbackError)) throw error;
        context.warn(error.code, `${error.message}; ${waiting} offline use(s) stay queued, unreported (${error.hint})`);
        return;
      }
      if (outcome.refused > 0) context.warn('RWS_FALLBACK_NOT_REPORTED', `the vault refused ${outcome.refused} offline use(s) for good (a date outside its window, or a grant the key no longer holds); removed from ${queue.dir}`);
      if (outcome.sent > 0) context.debug(`reported ${outcome.sent} offline use(s) to the vault's audit log`);
      if (outcome.dropped > 0) context.warn('RWS_FALLBACK_QUEUE_INVALID', `dropped ${outcome.dropped} malformed offline-use entr${outcome.dropped === 1 ? 'y' : 'ies'} from ${queue.dir}`);
      if (outcome.failure !== undefined) {
        context.warn('RWS_FALLBACK_NOT_REPORTED', `could not report ${outcome.left} offline use(s) to the vault (${(outcome.failure as { code?: string }).code ?? 'error'}); they stay queued for the next run`);
      }
      if (outcome.blocked !== undefined) {
        const { reason, hint } = await directoryFailure(queue.dir, queue.uid, outcome.blocked, { entry: outcome.blockedPath, fix: `chmod 700 ${queue.dir}` });
        context.warn('RWS_FALLBACK_NOT_REPORTED', `${outcome.left} offline use(s) queued in ${queue.dir} cannot be reported: ${reason}; they stay queued (${hint})`);
      }
    } finally {
      await client.close().catch(() => undefined);
    }
  }
}

/** A refusal of the copy says why the copy was wanted: the vault's own failure, by its code. */
function duringOutage(error: unknown, outage: { code: string } | undefined): unknown {
  if (outage === undefined || !(error instanceof FallbackError)) return error;
  return new FallbackError(error.code, `the vault is unavailable (${outage.code}), and ${error.message}`, error.hint ?? '');
}
