// Migration 6 adds api_keys.grant_mac and seals the keys that exist when it runs, in the same
// transaction as the ALTER and under the migration lock: it happens exactly once, by whichever
// process migrates first, and never half. From then on a NULL grant_mac is refused like a wrong
// one; were it read as "not sealed yet", a writer of the database could insert a copy of its key's
// row with admin = 1 and no MAC, and wait for the next process to seal it.
import { RwsError } from '../../../errors.js';
import type { SealSource } from '../grant-seal.js';
import { DamagedRowError } from '../state-errors.js';
import type { Transaction } from './driver.js';
import { toApiKey } from './rows.js';

export async function sealExistingKeys(tx: Transaction, seal: SealSource | undefined): Promise<void> {
  const rows = await tx.query('SELECT * FROM api_keys WHERE grant_mac IS NULL');
  if (rows.length === 0) return;
  const sealer = await (seal ?? noPepper)().catch((error: unknown) => {
    throw new RwsError('RWS_STORE_MISSING', `migration 6 seals the ${rows.length} API keys of the state database under the store's api-key-pepper, which cannot be read (${error instanceof RwsError ? error.message : 'error'}); nothing was changed`, {
      hint: 'migrate with the --store (or VANTA_SOPS_FILES_PATH) of the servers that use this database: its api-key-pepper is theirs',
    });
  });
  for (const row of rows) {
    let record;
    try {
      record = toApiKey(row);
    } catch (error) {
      // A row no command could read before the upgrade stays unreadable after it: left without a
      // MAC, it is refused even once mended by hand (make a new key instead).
      if (error instanceof DamagedRowError) continue;
      throw error;
    }
    await tx.query('UPDATE api_keys SET grant_mac = $2 WHERE id = $1', [record.id, sealer.mac(record)]);
  }
}

async function noPepper(): Promise<never> {
  throw new RwsError('RWS_STORE_MISSING', 'no store was given');
}
