// Where changes come from: the vault (refresh loops, src/watch/vault-feed.ts) or local files
// (directory watches, src/watch/file-feed.ts). Both only say "something may have changed"; the
// watch loop then asks `current()` and compares what the child would receive.
import type { RunPlan } from '../run.js';
import { loadAll, type LoadContext, type Secrets } from '../sources/source.js';
import { VaultSource } from '../sources/vault.js';
import type { VaultError } from '../vault-client/index.js';
import { FileFeed } from './file-feed.js';
import type { RefreshLog } from './refresh-log.js';
import { describeMs, type WatchSettings } from './settings.js';
import { VaultFeed } from './vault-feed.js';

export interface Feed {
  /** What is watched, for messages. */
  readonly label: string;
  /** How it is watched, for the start line. */
  readonly how: string;
  /** Before the first load: checks that the sources can be watched, and starts watching files. */
  prepare(): Promise<void>;
  initial(): Promise<Secrets>;
  start(): void;
  current(): Promise<Secrets>;
  stop(): Promise<void>;
}

export interface FeedHooks {
  context: LoadContext;
  log: RefreshLog;
  changed(reason: string): void;
  revoked(error: VaultError): void;
}

export function openFeed(plan: RunPlan, watch: WatchSettings, hooks: FeedHooks): Feed {
  const vault = plan.sources.find((source): source is VaultSource => source instanceof VaultSource);
  const label = plan.sources.map((source) => source.label).join(', ');
  if (vault) {
    const feed = new VaultFeed(vault, { intervalMs: watch.intervalMs, log: hooks.log, debug: hooks.context.debug, warn: hooks.context.warn, changed: hooks.changed, revoked: hooks.revoked });
    return {
      label,
      how: describeVaultRefresh(vault, watch.intervalMs),
      prepare: async () => undefined,
      initial: () => feed.initial(hooks.context),
      start: () => feed.start(),
      current: async () => feed.latest(),
      stop: () => feed.stop(),
    };
  }
  // Local sources (EnvFileSource, SopsFileSource) name their file.
  const paths = plan.sources.flatMap((source) => ('path' in source && typeof source.path === 'string' ? [source.path] : []));
  const files = new FileFeed(paths, { intervalMs: watch.intervalMs, changed: hooks.changed, debug: hooks.context.debug });
  // Rereads see no stop signal: a reread in flight when the watch ends is simply not used. A
  // warning about a file (its mode) is said once, not at every reread.
  const said = new Set<string>();
  const warnOnce = (code: string, message: string): void => {
    if (said.has(`${code} ${message}`)) return;
    said.add(`${code} ${message}`);
    hooks.context.warn(code, message);
  };
  const reread: LoadContext = { warn: warnOnce, debug: hooks.context.debug };
  return {
    label,
    how: `file events, and a comparison every ${describeMs(watch.intervalMs)}`,
    prepare: () => files.start(),
    initial: () => loadAll(plan.sources, { ...hooks.context, warn: warnOnce }),
    start: () => undefined,
    current: () => loadAll(plan.sources, reread),
    stop: async () => files.stop(),
  };
}

/**
 * How the vault is asked, as VaultFeed does it: an API key mints a token per refresh (one use for
 * a batch; with --per-key-requests, tokens for the listing and the reads), while a token minted
 * elsewhere is used as it is, each request one of its uses. One GET per key has no tag to hold.
 */
function describeVaultRefresh(vault: VaultSource, intervalMs: number): string {
  const { credential, perKeyRequests } = vault.settings;
  const every = describeMs(intervalMs);
  if (credential.kind === 'token') {
    return perKeyRequests
      ? `refreshing with the token from ${credential.origin}, one of its uses per request; one request per key, every ${every}`
      : `refreshing with the token from ${credential.origin}, one of its uses each time; long-polls when the vault offers it, else every ${every}`;
  }
  return perKeyRequests ? `refreshing with new tokens each time, one request per key; every ${every}` : `refreshing with a one-use token each time; long-polls when the vault offers it, else every ${every}`;
}
