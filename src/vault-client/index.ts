// The wrapper's client for the vault API. The wrapper imports this module lazily: it is the only
// place that loads undici, so runs from local files never pay for it.
export { VaultClient, type VaultClientOptions, type WatchedBatch } from './api.js';
export { VaultError, type VaultErrorCode } from './errors.js';
export type { BatchAnswer, BatchSelector, FallbackGrant, KeyInfo, MintedToken, MintRequest } from './responses.js';
