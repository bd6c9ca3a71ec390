// A 401 refuses the API key itself (revoked, expired). Every fallback copy made with it in the
// default place must then go, whichever run heard of it: a copy written by a --fallback job of
// the same key would otherwise still run that job during the next outage, after this host has
// learnt of the revocation. Loaded only when a 401 comes, so a plain run's normal path never
// reads the fallback's modules (nor node:crypto's HKDF behind them).
import { dirname } from 'node:path';
import { vaultUrlKey } from '../config/credential-store.js';
import { FallbackError } from '../errors.js';
import { defaultCacheDir, keyFingerprint, removeKeyCopies } from './cache-file.js';
import { directoryFailure } from './directory-failure.js';

export interface RemovedKeyCopies {
  dir: string;
  removed: number;
}

/**
 * The copies are found by the key's fingerprint in their clear metadata, a one-way digest: the
 * key itself is never written, printed or passed on. Undefined when there is no default place;
 * RWS_FALLBACK_NOT_REMOVED, with why and the fix, when a copy of the key could not be removed.
 */
export async function removeRevokedKeyCopies(apiKey: string, vaultUrl: string, env: Readonly<Record<string, string | undefined>>, uid: number): Promise<RemovedKeyCopies | undefined> {
  const dir = defaultCacheDir(env);
  if (dir === undefined) return undefined;
  // The URL as a copy's metadata holds it (fallback/settings.ts); a URL of no other form has no copies.
  const url = vaultUrlKey(vaultUrl) ?? vaultUrl;
  try {
    return { dir, removed: (await removeKeyCopies(dir, uid, url, keyFingerprint(apiKey))).length };
  } catch (error) {
    // A copy it could not open (chmod 000) is named by the errno's path, so its own chmod is said.
    const path = (error as NodeJS.ErrnoException).path;
    const entry = typeof path === 'string' && dirname(path) === dir ? path : undefined;
    const { reason, hint } = await directoryFailure(dir, uid, error, { entry, fix: `chmod 700 ${dir}` });
    throw new FallbackError('RWS_FALLBACK_NOT_REMOVED', `the fallback copies made with it in ${dir} could not all be removed: ${reason}`, hint);
  }
}
