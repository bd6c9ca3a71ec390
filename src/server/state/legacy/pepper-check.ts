// `db import --from-store` moves API keys as their HMACs under the source store's pepper. Served
// by a store with another pepper, not one of them would ever authenticate, and nothing said so:
// the import is refused unless both stores hold the same pepper. Neither pepper is ever printed.
import { RwsError } from '../../../errors.js';
import { resolvePepper } from '../../config.js';
import type { StorePaths } from '../../store/layout.js';

export class PepperMismatchError extends RwsError {
  constructor(message: string, hint: string) {
    super('RWS_PEPPER_MISMATCH', message, { hint });
  }
}

/**
 * Refuses `keys` API keys from `from` unless `from`'s api-key-pepper is the same as `to`'s (the
 * store that serves them). A source without a pepper file is refused too: whether its keys were
 * made under this store's pepper cannot be told, and a wrong guess is the silent failure above.
 */
export async function checkSamePepper(from: StorePaths, to: StorePaths, keys: number): Promise<void> {
  if (keys === 0 || from.pepper === to.pepper) return;
  const ours = await resolvePepper(to);
  const theirs = await resolvePepper(from).catch((error: unknown) => {
    if (error instanceof RwsError && error.code === 'RWS_STORE_MISSING') return undefined;
    throw error;
  });
  const what = `${keys} API key${keys === 1 ? '' : 's'} in ${from.apiKeys}`;
  const [was, are] = keys === 1 ? ['was', 'is'] : ['were', 'are'];
  if (theirs === undefined) {
    throw new PepperMismatchError(
      `--from-store ${from.dir} has no api-key-pepper, so whether the ${what} ${was} stored under this store's pepper (${to.pepper}) cannot be told; under another, none would ever authenticate; nothing was imported`,
      `copy the api-key-pepper of the store those keys were made in to ${from.pepper} (0600): ${to.pepper} if it was this store`,
    );
  }
  if (Buffer.from(ours).equals(Buffer.from(theirs))) return;
  throw new PepperMismatchError(
    `the api-key-pepper files ${from.pepper} and ${to.pepper} differ: the ${what} ${are} stored under the first and would never authenticate on a server of this store; nothing was imported`,
    `give --from-store the store whose pepper this store has; or, if this store has no API keys of its own yet, copy ${from.pepper} over ${to.pepper} (0600, on every server of this store) and import again`,
  );
}
