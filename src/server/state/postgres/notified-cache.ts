// A cache of API keys and of unlimited tokens' records for PostgreSQL replicas, kept honest by
// LISTEN/NOTIFY: every change to a key or a token notifies `rws_state` in the transaction that
// makes it, and every replica drops what it held. The cache answers only while its listening
// connection is up; when that connection is down, every lookup goes to the database until it is
// back. A lookup that started before a notification arrived is not cached (generation check).
// Uses are never taken from the cache: the conditional UPDATE in the commit is authoritative.
import pg from 'pg';
import { STATE_CHANNEL as CHANNEL, type StateCache, type TokenStatusRow } from '../sql/sql-state-store.js';
import type { StoredApiKey } from '../state-store.js';
import { clientConfig } from './client-config.js';

const MAX_TOKENS = 10_000;
const PING_MS = 2_000;

export async function startNotifiedCache(url: string): Promise<StateCache> {
  const cache = new NotifiedCache(url);
  await cache.connect();
  return cache;
}

class NotifiedCache implements StateCache {
  readonly #keys = new Map<string, StoredApiKey>();
  readonly #tokens = new Map<string, TokenStatusRow>();
  #client: pg.Client | undefined;
  #live = false;
  #generation = 0;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;
  #ping: NodeJS.Timeout | undefined;
  #backoffMs = 250;

  constructor(private readonly url: string) {}

  async connect(): Promise<void> {
    // Named apart from the pool's connections, so an operator (or a test) can tell it in pg_stat_activity.
    const client = new pg.Client({ ...clientConfig(this.url), application_name: 'secrets-server listener' });
    const down = () => this.#down(client);
    client.on('error', down);
    client.on('end', down);
    client.on('notification', (message) => this.#forget(message.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch {
      down();
      return;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.#client = client;
    // Notifications missed while down may concern anything a lookup loaded meanwhile.
    this.#clear();
    this.#live = true;
    this.#backoffMs = 250;
    // A connection that silently stops (no RST) would keep the cache "live": ping it.
    // One ping at a time: while the database hangs, an unanswered ping fails by its read timeout
    // (and takes the cache down); pings queued behind it only made node-postgres warn in the log.
    let pinging = false;
    this.#ping = setInterval(() => {
      if (pinging) return;
      pinging = true;
      client.query('SELECT 1').then(() => (pinging = false), down);
    }, PING_MS);
    this.#ping.unref();
  }

  #down(client: pg.Client): void {
    if (client !== this.#client && this.#client !== undefined) return;
    this.#live = false;
    this.#client = undefined;
    this.#clear();
    if (this.#ping) clearInterval(this.#ping);
    client.removeAllListeners('end');
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.connect();
    }, this.#backoffMs);
    this.#retry.unref();
    this.#backoffMs = Math.min(this.#backoffMs * 2, 5_000);
  }

  #clear(): void {
    this.#generation += 1;
    this.#keys.clear();
    this.#tokens.clear();
  }

  #forget(payload: string): void {
    this.#generation += 1;
    if (payload.startsWith('t:')) {
      this.#tokens.delete(payload.slice(2));
      return;
    }
    // `k:` with no id: everything changed (a rollback revoked every earlier token).
    const keyId = payload.slice(2);
    if (keyId === '') {
      this.#clear();
      return;
    }
    // A key changed: it is cached by its hash, which is not in the payload, and keys are few;
    // drop them all, and the tokens it minted.
    this.#keys.clear();
    for (const [jti, row] of this.#tokens) if (row.api_key_id === keyId) this.#tokens.delete(jti);
  }

  async apiKey(hash: string, load: () => Promise<StoredApiKey | undefined>): Promise<StoredApiKey | undefined> {
    const known = this.#live ? this.#keys.get(hash) : undefined;
    if (known) return known;
    const generation = this.#generation;
    const loaded = await load();
    // An unknown key is not remembered: a key created a moment ago must work at once (and
    // guessed keys cannot fill the cache).
    if (this.#live && generation === this.#generation && loaded !== undefined) this.#keys.set(hash, loaded);
    return loaded;
  }

  async tokenStatus(jti: string, load: () => Promise<TokenStatusRow | undefined>): Promise<TokenStatusRow | undefined> {
    const known = this.#live ? this.#tokens.get(jti) : undefined;
    if (known) return known;
    const generation = this.#generation;
    const loaded = await load();
    // Only an unlimited record is kept, whatever the presented claims said: a limited one's count
    // changes with every use, which is not notified.
    if (this.#live && generation === this.#generation && loaded?.usage_limit === null && this.#tokens.size < MAX_TOKENS) this.#tokens.set(jti, loaded);
    return loaded;
  }

  async flush(): Promise<void> {
    this.#clear();
  }

  forget(change: { apiKeyId?: string; jti?: string }): void {
    this.#forget(change.jti !== undefined ? `t:${change.jti}` : `k:${change.apiKeyId ?? ''}`);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    if (this.#retry) clearTimeout(this.#retry);
    if (this.#ping) clearInterval(this.#ping);
    const client = this.#client;
    this.#client = undefined;
    if (client) {
      client.removeAllListeners('end');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
    }
  }
}
