// --fallback[=PATH], --fallback-max-age and --offline, checked and turned into a FallbackSource.
// Loaded only when one of them is given: a plain run never reads this, nor node:crypto's HKDF.
import { isAbsolute, join, resolve } from 'node:path';
import type { Credential } from '../config/credentials.js';
import { vaultUrlKey } from '../config/credential-store.js';
import { readDuration } from '../duration.js';
import { UsageError } from '../errors.js';
import type { SecretSource } from '../sources/source.js';
import type { VaultSource } from '../sources/vault.js';
import type { VaultClientOptions } from '../vault-client/index.js';
import { CacheFile, cacheFileName, defaultCacheDir, keyFingerprint, normalSelection } from './cache-file.js';
import { FallbackSource } from './fallback-source.js';
import { UseQueue } from './use-queue.js';

export const DEFAULT_MAX_AGE_SECONDS = 24 * 3600;
/** The test hook's bound: ten years is more than any test needs. */
const MOST_AHEAD_SECONDS = 10 * 365 * 86_400;

export interface FallbackRequest {
  /** '' for bare --fallback (the default place), a path for --fallback=PATH, undefined without it. */
  path: string | undefined;
  maxAge: string | undefined;
  offline: boolean;
  watch: boolean;
  credential: Credential;
  client: VaultClientOptions;
  environment: string;
  patterns: readonly string[];
  keys: readonly string[];
  perKeyRequests: boolean;
  subject: string;
  env: Readonly<Record<string, string | undefined>>;
  uid: number;
  cwd: string;
}

export function withFallback(vault: VaultSource, request: FallbackRequest): SecretSource {
  // --watch restarts the child on every change it hears of: from a cache there is none to hear.
  if (request.path === undefined && !request.offline) throw new UsageError('--fallback-max-age needs --fallback or --offline');
  if (request.offline && request.watch) throw new UsageError('--offline cannot be combined with --watch: an offline run hears of no changes', 'drop --watch, or drop --offline');
  // A watcher refreshes by its own requests (ETags, long-polls), which carry no fallback answer;
  // a copy would go stale beside it. Refused rather than half done.
  if (request.watch) throw new UsageError('--fallback cannot be combined with --watch', 'drop --fallback: a watched child keeps the secrets it started with while the vault is away');
  if (request.credential.kind !== 'api-key') {
    // The cache's key is derived from the API key; a token minted elsewhere is short-lived and
    // usually usage-limited, which the vault never lets be cached.
    throw new UsageError(`--fallback and --offline need an API key; the credential in use is a token (from ${request.credential.origin})`, 'use an API key (RWS_API_KEY_FILE, or run-with-secrets login), or drop --fallback/--offline');
  }
  if (request.perKeyRequests) throw new UsageError('--fallback and --offline need the batch endpoint, which says whether secrets may be cached', 'drop --per-key-requests');
  const maxAgeSeconds = request.maxAge === undefined ? DEFAULT_MAX_AGE_SECONDS : maxAge(request.maxAge);
  const url = vaultUrlKey(request.client.baseUrl);
  if (url === undefined) throw new UsageError('--fallback needs a vault URL of the form https://host[:port][/prefix]');
  const identity = { url, environment: request.environment, selection: normalSelection(request.patterns, request.keys), keyId: keyFingerprint(request.credential.value) };
  let path: string;
  const explicit = request.path !== undefined && request.path !== '';
  if (explicit) {
    path = isAbsolute(request.path!) ? request.path! : resolve(request.cwd, request.path!);
  } else {
    const dir = defaultCacheDir(request.env);
    if (dir === undefined) throw new UsageError('no place for the fallback cache: neither XDG_STATE_HOME nor HOME is set', 'set one, or give --fallback=PATH');
    path = join(dir, cacheFileName(identity));
  }
  return new FallbackSource(vault, {
    cache: new CacheFile(path, request.uid, !explicit),
    // Uses are reported with the API key of the run that sends them, so each key queues its own:
    // a PATH kept across a key rotation must not put the old key's uses under the new key's
    // name. (The default place's file name already covers the key.)
    queue: new UseQueue(explicit ? `${path}.${identity.keyId.slice(0, 12)}.uses` : `${path}.uses`, request.uid, explicit ? 'chosen' : 'default'),
    identity,
    apiKey: request.credential.value,
    offline: request.offline,
    maxAgeSeconds,
    clock: { now: () => new Date(), aheadSeconds: clockAhead(request.env.RWS_TEST_CLOCK_AHEAD_SECONDS) },
    subject: request.subject,
    client: request.client,
  });
}

/**
 * The test hook: limits are judged this many seconds later than now. Forward only, so it can make
 * a cache expire sooner and never later; anything but a whole number of seconds is refused.
 */
function clockAhead(value: string | undefined): number {
  if (value === undefined || value === '') return 0;
  if (!/^\d{1,10}$/.test(value) || Number(value) > MOST_AHEAD_SECONDS) throw new UsageError('RWS_TEST_CLOCK_AHEAD_SECONDS must be a whole number of seconds (it only moves the fallback clock forward)');
  return Number(value);
}

/** Said as the watch flags say theirs: the grammar with the range, or the range alone. */
function maxAge(text: string): number {
  const seconds = readDuration(text);
  const shown = JSON.stringify(text.slice(0, 64));
  if (seconds === undefined) throw new UsageError(`--fallback-max-age expects a duration such as 30m, 24h or 7d (one whole number and one unit: s, m, h or d; at least 1s), got ${shown}`);
  if (seconds < 1) throw new UsageError(`--fallback-max-age must be at least 1s (a copy is never younger than that), got ${shown}`);
  return seconds;
}
