// StateStore over SQL, the same code for SQLite and PostgreSQL. A request's effect and its audit
// row commit together (commit-queue.ts batches the requests of one event-loop turn into one
// transaction); a use is one conditional UPDATE … RETURNING, never a read then a write, so the
// count is exact however many processes race for the last use.
import { GENESIS_HASH, sealRows } from '../../audit/chain.js';
import type { AuditQuery, AuditRecord, StoredAuditRow } from '../../audit/record.js';
import type { ApiKeyRecord, ApiKeyView, StoredApiKey, AuditBuckets, Commit, Effect, PresentedToken, SessionCheck, SessionRecord, StateStore, TokenOutcome, TokenQuery, TokenStatus, TokenView } from '../state-store.js';
import type { LegacyState } from '../legacy/import-store.js';
import { auditInsert } from './audit-insert.js';
import { CommitQueue } from './commit-queue.js';
import { StateUnavailableError } from '../state-errors.js';
import { IN_TRANSACTION, type Row, type SqlDriver, type Transaction, type TransactionOptions } from './driver.js';
import type { GrantSeal, SealSource } from '../grant-seal.js';
import { KeyGrantsAlteredError } from '../state-errors.js';
import { judge, sameClaims, selectTokenStatus, toApiKey, toApiKeyView, toAuditHead, toAuditRow, toSession, toTokenView } from './rows.js';
import { currentVersion } from './schema.js';
import { StateWentBackError } from '../state-errors.js';

const AUDIT_LOCK = 'rws:audit-chain';
/** The PostgreSQL notification channel for changed keys and tokens. */
export const STATE_CHANNEL = 'rws_state';
const INSERT_CHUNK = 200;

export interface SqlStateOptions {
  /**
   * Called with every batch of sealed rows inside the transaction, before it commits (the audit
   * file sink); a throw rolls it back, and the function it returns is called if the commit fails.
   */
  beforeCommit?: (rows: readonly StoredAuditRow[]) => (() => void) | void;
  /** Called once the rows are committed (followers, notifications). */
  afterCommit?: (rows: readonly StoredAuditRow[]) => void;
  /** Lookups a cache may answer (PostgreSQL, while change notifications are live). */
  cache?: StateCache;
  /** Seals the grants of every key row written, and checks them on every key row read (grant-seal.ts). */
  seal: SealSource;
  /** Told once per key whose row fails its grant MAC. */
  onAlteredKey?: (error: KeyGrantsAlteredError) => void;
}

/** A read-through cache of records that change only by events it hears about. */
export interface StateCache {
  apiKey(hash: string, load: () => Promise<StoredApiKey | undefined>): Promise<StoredApiKey | undefined>;
  tokenStatus(jti: string, load: () => Promise<TokenStatusRow | undefined>): Promise<TokenStatusRow | undefined>;
  /** Drops everything (after a rollback was detected). */
  flush(): Promise<void>;
  /** Forgets what this process holds of these records (the others hear of it by notification). */
  forget(change: { apiKeyId?: string; jti?: string }): void;
  close(): Promise<void>;
}

/** A token's record, its uses and revocation, and its key's state: what judging a token takes. */
export interface TokenStatusRow extends TokenView {
  key_revoked_at: string | null;
  key_expires_at: string | null;
  key_exists: boolean;
  key_fallback: boolean;
}

interface Pending {
  commit: Commit;
  now: Date;
}

/** An audit row by its place in the chain and its hash. */
export interface AuditHead {
  seq: number;
  hash: string;
}

export class SqlStateStore implements StateStore {
  readonly #queue: CommitQueue<Pending, TokenOutcome>;
  /**
   * The newest audit row this process committed durably or was told of (the rollback guard's
   * reads, after it synced them). Every write reads the chain's head anyway (to append to it):
   * finding it older than this is a rollback noticed at no cost, before anything is served from
   * the restored state. Rows of unlimited reads commit unsynced and are left out: a database crash
   * may lose them (PostgreSQL, synchronous_commit off), which is no rollback.
   */
  #newest: AuditHead | undefined;
  #onWentBack: (() => void) | undefined;
  /** Keys whose altered row was reported (once each). */
  readonly #reportedAltered = new Set<string>();
  /**
   * A key's expiry and fallback flag as a row that passed its MAC said them. They never change
   * after creation, so a batch answer compares the values its token check joined with these: no
   * MAC is computed per request, only once per key and process; null: the row failed its MAC.
   */
  readonly #sealedGrants = new Map<string, { readonly expiresAt: string | null; readonly fallback: boolean } | null>();

  constructor(
    private readonly db: SqlDriver,
    private readonly options: SqlStateOptions,
  ) {
    // A commit fails by its own deadline where the driver has one (PostgreSQL), never waiting
    // behind batches that hang on a database that does not answer.
    this.#queue = new CommitQueue((items, deadline) => this.#commitBatch(items, deadline), {
      maxWaitMs: db.commitWaitMs,
      expired: () => new StateUnavailableError(`the state database ${db.location} did not answer in time`),
    });
  }

  get kind(): 'sqlite' | 'postgres' {
    return this.db.dialect;
  }

  get location(): string {
    return this.db.location;
  }

  // --- API keys -------------------------------------------------------------------------------

  async listApiKeys(now: Date): Promise<ApiKeyView[]> {
    const seal = await this.options.seal();
    const rows = await this.db.query(`SELECT k.*, ${LIVE_TOKENS} FROM api_keys k ORDER BY k.created_at, k.id`, [now.toISOString(), epochSeconds(now)]);
    return rows.map((row) => toApiKeyView(row, this.#stored(row, seal)));
  }

  async getApiKey(id: string, now: Date): Promise<ApiKeyView | undefined> {
    const seal = await this.options.seal();
    const rows = await this.db.query(`SELECT k.*, ${LIVE_TOKENS} FROM api_keys k WHERE k.id = $3`, [now.toISOString(), epochSeconds(now), id]);
    return rows.map((row) => toApiKeyView(row, this.#stored(row, seal)))[0];
  }

  async findApiKey(hash: string): Promise<StoredApiKey | undefined> {
    const load = async () => {
      const seal = await this.options.seal();
      return (await this.db.query('SELECT * FROM api_keys WHERE hash = $1', [hash])).map((row) => this.#stored(row, seal))[0];
    };
    return this.options.cache ? this.options.cache.apiKey(hash, load) : load();
  }

  /** A key row as a record, with whether its grants match their MAC; a row that does not is reported once. */
  #stored(row: Row, seal: GrantSeal): StoredApiKey {
    const record = toApiKey(row);
    const intact = seal.matches(record, row.grant_mac);
    if (!intact && !this.#reportedAltered.has(record.id)) {
      this.#reportedAltered.add(record.id);
      this.options.onAlteredKey?.(new KeyGrantsAlteredError(record.id));
    }
    return { ...record, grants_intact: intact };
  }

  async addApiKey(record: ApiKeyRecord, audit: AuditRecord): Promise<void> {
    // Read before the transaction: the first read of the pepper file must not hold the write lock.
    const seal = await this.options.seal();
    await this.#write(async (tx, appendAudit) => {
      await this.#insertApiKey(tx, record, seal);
      await appendAudit([audit]);
    });
  }

  async revokeApiKey(id: string, at: Date, audit: AuditRecord): Promise<boolean> {
    return this.#write(async (tx, appendAudit) => {
      const found = await this.#revokeApiKey(tx, id, at);
      if (found) await appendAudit([audit]);
      return found;
    });
  }

  async #insertApiKey(tx: Transaction, record: ApiKeyRecord, seal: GrantSeal): Promise<void> {
    await tx.query(
      'INSERT INTO api_keys (id, name, prefix, hash, environments, key_patterns, max_ttl_minutes, created_at, expires_at, revoked_at, last_used_at, admin, fallback, grant_mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13)',
      [record.id, record.name, record.prefix, record.hash, JSON.stringify(record.environments), JSON.stringify(record.key_patterns), record.max_ttl_minutes, record.created_at, record.expires_at, record.revoked_at, record.admin ? 1 : 0, record.fallback ? 1 : 0, seal.mac(record)],
    );
    await this.#changed(tx, { apiKeyId: record.id });
  }

  /**
   * Revoking a key ends everything it opened: its tokens are refused from the next request (every
   * token check joins the key's row, so no token row needs changing), and its console sessions
   * are deleted in this same transaction.
   */
  async #revokeApiKey(tx: Transaction, id: string, at: Date): Promise<boolean> {
    const found = await tx.query('SELECT id FROM api_keys WHERE id = $1', [id]);
    if (found.length === 0) return false;
    await tx.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, at.toISOString()]);
    await tx.query('DELETE FROM console_sessions WHERE api_key_id = $1', [id]);
    await this.#changed(tx, { apiKeyId: id });
    return true;
  }

  // --- tokens ---------------------------------------------------------------------------------

  async tokenStatus(token: PresentedToken, now: Date): Promise<TokenStatus> {
    const load = async () => (await selectTokenStatus(this.db, token.jti))[0];
    // Only unlimited tokens may be answered from a cache: their state changes only by revocations,
    // which the cache hears about. A limited token's count is read every time. Either way judge()
    // compares the claims with the record, so a token claiming no limit gets no further than that.
    const row = token.usage_limit === null && this.options.cache ? await this.options.cache.tokenStatus(token.jti, load) : await load();
    const key = row?.key_exists ? await this.#sealedKeyOf(row) : undefined;
    return { outcome: judge(row, token, now), apiKeyId: row?.api_key_id ?? null, ...(key ? { key } : {}) };
  }

  /**
   * The key's expiry and fallback flag joined to a token's row, only if a row of that key that
   * passed its MAC said the same: a hand-raised `fallback` (or a later `expires_at`) never reaches
   * a batch answer. Whether the token is honoured does not depend on it: its own signed claims
   * carry its grants, and its expiry is never later than the key's (see generateToken).
   */
  async #sealedKeyOf(row: TokenStatusRow): Promise<TokenStatus['key']> {
    if (!this.#sealedGrants.has(row.api_key_id)) {
      // No pepper to check with (its file gone or unreadable): no fallback offered, the read still
      // answered, as reads needed no pepper before; asked again at the key's next read.
      const seal = await this.options.seal().catch(() => undefined);
      if (seal === undefined) return undefined;
      const found = (await this.db.query('SELECT * FROM api_keys WHERE id = $1', [row.api_key_id])).map((keyRow) => this.#stored(keyRow, seal))[0];
      // Kept either way: a key's sealed columns never change, so neither does the verdict (an
      // altered row's tokens would otherwise pay a query and an HMAC on every read).
      this.#sealedGrants.set(row.api_key_id, found?.grants_intact === true ? { expiresAt: found.expires_at, fallback: found.fallback } : null);
    }
    const sealed = this.#sealedGrants.get(row.api_key_id);
    return sealed != null && sealed.expiresAt === row.key_expires_at && sealed.fallback === row.key_fallback ? sealed : undefined;
  }

  commit(commit: Commit, now: Date): Promise<TokenOutcome> {
    // A key made over HTTP is sealed in the batch's transaction: the pepper is read before it.
    if (commit.effect?.kind === 'apikey.create') return this.options.seal().then(() => this.#queue.push({ commit, now }));
    // Every request's commit: the queue's own promise (an async step around it cost two more turns).
    return this.#queue.push({ commit, now });
  }

  async #commitBatch(items: Pending[], deadline: number | undefined): Promise<TokenOutcome[]> {
    try {
      return await this.#commitOnce(items, deadline);
    } catch (error) {
      // Rows are locked in one order (below), so replicas do not deadlock; should the database
      // still pick this batch as a deadlock or serialisation victim, it is tried once more.
      if (!isRetryable(error)) throw error;
      return this.#commitOnce(items, deadline);
    }
  }

  async #commitOnce(items: Pending[], deadline: number | undefined): Promise<TokenOutcome[]> {
    return this.#write(async (tx, appendAudit) => {
      const outcomes: TokenOutcome[] = items.map(() => 'ok');
      const issuers: Array<string | null | undefined> = items.map(() => undefined);
      // Rows are locked in one order in every process: API keys by id (mints), then tokens by jti,
      // revoked or used alike (a token's revocation before its uses), then the audit chain. With
      // revocations all before uses, a batch revoking A and using B and one revoking B and using A
      // locked A and B in opposite orders, and deadlocked. The uses of each token go together:
      // one UPDATE per token per batch (50 readers of one token cost one statement, not 50).
      const entries = [...items.entries()];
      const keyOf = ({ commit }: Pending): string => lockTarget(commit.effect);
      const rank = ({ commit }: Pending): number => lockRank(commit.effect);
      const revokesFirst = ({ commit }: Pending): number => (commit.effect?.kind === 'revoke' ? 0 : 1);
      entries.sort(([, a], [, b]) => rank(a) - rank(b) || (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0) || revokesFirst(a) - revokesFirst(b));
      const dead = await this.#deadKeys(tx, items);
      // The token work in lock order (by jti): revocations by their index, uses grouped; a jti's
      // use groups also in a list of their own.
      const tokenWork: Array<{ revoke: number } | UseGroup> = [];
      const byJti = new Map<string, UseGroup[]>();
      for (const [index, { commit, now }] of entries) {
        const effect = commit.effect;
        if (commit.liveKey !== undefined && dead?.has(commit.liveKey) === true) {
          outcomes[index] = 'key_revoked';
        } else if (effect?.kind === 'use') {
          // Grouped by every claim, not by jti alone: a token signed again with other claims
          // must not ride on the real token's use (nor the real one be judged by its claims).
          const same = byJti.get(effect.token.jti);
          let group = same?.find((candidate) => sameClaims(candidate.token, effect.token));
          if (group === undefined) {
            group = { token: effect.token, indices: [], now };
            tokenWork.push(group);
            if (same === undefined) byJti.set(effect.token.jti, [group]);
            else same.push(group);
          }
          group.indices.push(index);
        } else if (effect?.kind === 'revoke') {
          tokenWork.push({ revoke: index });
        } else if (effect !== undefined) {
          outcomes[index] = await this.#apply(tx, commit, now);
        }
      }
      // A batch of uses alone (every read's) sends its statements without waiting on each answer:
      // the uses in lock order, then the audit chain's lock and head, all in one round trip where
      // the database pipelines. A batch with revocations keeps to one statement at a time, so that
      // a revocation's statements lock what they lock before the next token's.
      let headRead: Promise<AuditHeadRow[]> | undefined;
      if (tokenWork.length > 0 && tokenWork.every((work) => !('revoke' in work))) {
        const uses = (tokenWork as UseGroup[]).map((group) => this.#use(tx, group.token, group.indices.length, group.now));
        headRead = answerLater(this.#readHead(tx));
        for (const [position, settled] of (await Promise.all(uses)).entries()) await this.#settleUses(tx, tokenWork[position] as UseGroup, settled, outcomes, issuers);
      }
      for (const work of headRead === undefined ? tokenWork : []) {
        if ('revoke' in work) {
          const { commit, now } = items[work.revoke] as Pending;
          outcomes[work.revoke] = await this.#apply(tx, commit, now);
          continue;
        }
        await this.#settleUses(tx, work, await this.#use(tx, work.token, work.indices.length, work.now), outcomes, issuers);
      }
      await appendAudit(items.map(({ commit }, index) => commit.audit(outcomes[index] as TokenOutcome, issuers[index])), headRead);
      return outcomes;
    }, { durable: items.some(({ commit }) => needsDurability(commit)), deadline, pipelined: items.every(({ commit }) => commit.effect === undefined || commit.effect.kind === 'use') });
  }

  /** Each request of a use group gets its outcome: granted in order, the rest told why not. */
  async #settleUses(tx: Transaction, { token, indices, now }: UseGroup, { granted, apiKeyId: charged }: { granted: number; apiKeyId?: string }, outcomes: TokenOutcome[], issuers: Array<string | null | undefined>): Promise<void> {
    let refused: TokenOutcome = 'ok';
    let apiKeyId: string | null = charged ?? null;
    if (granted < indices.length) {
      const row = (await selectTokenStatus(tx, token.jti))[0];
      refused = judge(row, token, now);
      apiKeyId = row?.api_key_id ?? null;
    }
    indices.forEach((index, position) => {
      outcomes[index] = position < granted ? 'ok' : refused === 'ok' ? 'exhausted' : refused;
      issuers[index] = apiKeyId;
    });
  }

  /**
   * Which of the batch's requesting keys (`liveKey`) the database no longer holds live. A plain
   * read (no lock): it sees every revocation committed before this transaction, which is what
   * "stops working at the next request, on every replica" needs, whatever a cache still says.
   */
  async #deadKeys(tx: Transaction, items: Pending[]): Promise<Set<string> | undefined> {
    // Most batches are token reads, which name no key: no allocation, no query for them.
    let asked: Set<string> | undefined;
    for (const { commit } of items) if (commit.liveKey !== undefined) (asked ??= new Set()).add(commit.liveKey);
    if (asked === undefined) return undefined;
    const ids = [...asked];
    const now = (items[0] as Pending).now.toISOString();
    const marks = ids.map((_, index) => `$${index + 2}`).join(', ');
    const live = await tx.query<{ id: string }>(`SELECT id FROM api_keys WHERE id IN (${marks}) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)`, [now, ...ids]);
    const alive = new Set(live.map((row) => row.id));
    return new Set(ids.filter((id) => !alive.has(id)));
  }

  /**
   * Charges up to `wanted` uses of a token in one conditional UPDATE … RETURNING, never beyond
   * its record's own limit, never for a revoked token or one whose key is revoked or expired, and
   * never for a token whose claims differ from its record (judge() calls that one unknown). The
   * count before is read under the row's lock (PostgreSQL `FOR UPDATE`; SQLite's write lock is
   * already held), so how many were granted is exact.
   */
  async #use(tx: Transaction, token: PresentedToken, wanted: number, now: Date): Promise<{ granted: number; apiKeyId?: string }> {
    // Without a limit every use is granted or none is (revoked): no count to read first. The
    // presented limit may say so because the UPDATE charges only a token that presents its
    // record's limit exactly.
    // Both statements are sent before either answer is awaited (the UPDATE does not need the
    // count, only the grant does): one round trip where the database pipelines.
    const lock = this.db.dialect === 'postgres' ? ' FOR UPDATE' : '';
    // Sent behind a pipelined BEGIN (see #commitOnce): should that BEGIN fail, this charges nothing.
    const inTransaction = this.db.dialect === 'postgres' ? `\n          AND ${IN_TRANSACTION}` : '';
    const counted = token.usage_limit === null ? undefined : tx.query<{ uses: number }>(`SELECT uses FROM tokens WHERE jti = $1${lock}`, [token.jti]);
    const charged = tx.query<{ uses: number; api_key_id: string }>(
      `UPDATE tokens SET uses = CASE WHEN usage_limit IS NOT NULL AND uses + $2 > usage_limit THEN usage_limit ELSE uses + $2 END
        WHERE jti = $1 AND revoked_at IS NULL AND uses >= 0 AND (usage_limit IS NULL OR uses < usage_limit)
          AND subject = $4 AND environment = $5 AND key_pattern = $6 AND issued_at = $7 AND expires_at = $8 AND COALESCE(usage_limit, 0) = $9
          AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = tokens.api_key_id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $3))${inTransaction}
        RETURNING uses, api_key_id`,
      // A limit is at least 1, so 0 stands for none.
      [token.jti, wanted, now.toISOString(), token.subject, token.environment, token.key_pattern, token.issued_at, token.expires_at, token.usage_limit ?? 0],
    );
    // Both awaited together: one failing first must not leave the other's failure unhandled (a
    // crash), as awaiting them in turn did when the count's statement timed out.
    const [counts, after] = await Promise.all([counted ?? [{ uses: 0 }], charged]);
    const before = counts[0];
    const row = after[0];
    if (before === undefined) return { granted: 0 };
    // Not charged: the caller reads the row to say why, and whose it is.
    if (row === undefined) return { granted: 0 };
    return { granted: token.usage_limit === null ? wanted : Number(row.uses) - Number(before.uses), apiKeyId: row.api_key_id };
  }

  async #apply(tx: Transaction, { effect }: Commit, now: Date): Promise<TokenOutcome> {
    const iso = now.toISOString();
    switch (effect?.kind) {
      case 'issue': {
        const t = effect.token;
        // The key may have been revoked since it was checked: the mint stands only if it is still live.
        const live = await tx.query('UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) RETURNING id', [t.api_key_id, iso]);
        if (live.length === 0) return 'revoked';
        await tx.query(
          'INSERT INTO tokens (jti, api_key_id, subject, environment, key_pattern, issued_at, expires_at, usage_limit, uses, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL)',
          [t.jti, t.api_key_id, t.subject, t.environment, t.key_pattern, t.issued_at, t.expires_at, t.usage_limit],
        );
        return 'ok';
      }
      case 'revoke': {
        await tx.query('UPDATE tokens SET revoked_at = $2 WHERE jti = $1 AND revoked_at IS NULL', [effect.jti, iso]);
        await this.#changed(tx, { jti: effect.jti });
        return 'ok';
      }
      case 'apikey.create':
        await this.#insertApiKey(tx, effect.record, await this.options.seal());
        return 'ok';
      case 'apikey.revoke':
        // The caller found the key first; keys are never deleted, so a miss here changes nothing.
        await this.#revokeApiKey(tx, effect.id, now);
        return 'ok';
      case 'session.create': {
        // The key may have been revoked since it was checked (on another replica, its notice not
        // yet here): a session opens only for a live admin key, judged by this same statement,
        // and the refusal is the one a revoked key gets at the door.
        const r = effect.session;
        const made = await tx.query(
          `INSERT INTO console_sessions (id_hash, api_key_id, created_at, last_seen_at, expires_at)
           SELECT $1, k.id, $3, $4, $5 FROM api_keys k WHERE k.id = $2 AND ${LIVE_ADMIN_KEY('$6')} RETURNING id_hash`,
          [r.id_hash, r.api_key_id, r.created_at, r.last_seen_at, r.expires_at, iso],
        );
        if (made.length === 0) return 'key_revoked';
        // The browser's new cookie replaces the old one, whose session would otherwise stay
        // usable until it went idle. A refused sign-in leaves it, as a refusal at the door does.
        if (effect.replaces !== undefined) await tx.query('DELETE FROM console_sessions WHERE id_hash = $1', [effect.replaces]);
        return 'ok';
      }
      case 'session.delete':
        await tx.query('DELETE FROM console_sessions WHERE id_hash = $1', [effect.idHash]);
        return 'ok';
      default:
        return 'ok';
    }
  }

  async listTokens(query: TokenQuery): Promise<TokenView[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (query.apiKeyId !== undefined) where.push(`t.api_key_id = $${params.push(query.apiKeyId)}`);
    if (query.active) {
      const iso = `$${params.push(query.now.toISOString())}`;
      where.push(`t.revoked_at IS NULL AND t.expires_at > $${params.push(epochSeconds(query.now))} AND (t.usage_limit IS NULL OR t.uses < t.usage_limit)`);
      where.push(`EXISTS (SELECT 1 FROM api_keys k WHERE k.id = t.api_key_id AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ${iso}))`);
    }
    const sql = `SELECT t.* FROM tokens t${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY t.issued_at DESC, t.jti DESC LIMIT $${params.push(query.limit)}`;
    return (await this.db.query(sql, params)).map(toTokenView);
  }

  async findToken(jti: string): Promise<TokenView | undefined> {
    return (await this.db.query('SELECT * FROM tokens WHERE jti = $1', [jti])).map(toTokenView)[0];
  }

  /** This database's id (made when its schema was first made, kept by its backups). */
  async databaseId(): Promise<string> {
    return (await this.db.query<{ value: string }>('SELECT value FROM meta WHERE name = $1', ['database_id']))[0]?.value ?? '';
  }

  /** The newest audit row's seq and hash (0 and the genesis hash for an empty trail). */
  async auditHead(): Promise<{ seq: number; hash: string }> {
    const head = (await this.db.query('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1'))[0];
    return head ? toAuditHead(head) : { seq: 0, hash: GENESIS_HASH };
  }

  /** The hash of row `seq`, or undefined when there is no such row. */
  async auditHashAt(seq: number): Promise<string | undefined> {
    return (await this.db.query<{ hash: string }>('SELECT hash FROM audit WHERE seq = $1', [seq]))[0]?.hash;
  }

  /** Throws StateReplacedError when the database open is no longer the one at its location (see SqlDriver). */
  async checkStorage(): Promise<void> {
    await this.db.checkStorage?.();
  }

  /** The newest audit row this process committed or noted, if any. */
  newestAuditHead(): AuditHead | undefined {
    return this.#newest;
  }

  /** Records a durable head: later commits must find it or a newer one. */
  noteAuditHead(head: AuditHead): void {
    if (this.#newest === undefined || head.seq > this.#newest.seq) this.#newest = head;
  }

  /** Forgets the newest head (the database's id changed: its rows are another chain's). */
  forgetAuditHead(): void {
    this.#newest = undefined;
  }

  /** Called (once per refused commit, outside it) when a commit found the chain gone back. */
  onWentBack(listener: () => void): void {
    this.#onWentBack = listener;
  }

  /** Makes every commit so far durable (one fsynced commit: the WAL is sequential). */
  async syncToDisk(): Promise<void> {
    await this.db.transaction((tx) => tx.query('UPDATE meta SET value = value WHERE name = $1', ['database_id']), { durable: true });
  }

  /** After a rollback: every token minted before `at` stops working, whatever the restored rows say. */
  async revokeTokensIssuedBefore(at: Date): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('UPDATE tokens SET revoked_at = $2 WHERE issued_at < $1 AND revoked_at IS NULL', [Math.ceil(at.getTime() / 1000), at.toISOString()]);
      // Every replica drops what it cached, not only this one (`k:` with no id means everything).
      await this.#changed(tx, {});
    });
    // Once the revocation has committed (never before: if it fails, commits must go on being
    // refused), the restored chain is the one to extend: every earlier token is refused now.
    this.#newest = undefined;
    await this.options.cache?.flush();
  }

  /** Forgets tokens that expired over an hour ago (the JWT check refuses them anyway), and ended console sessions. */
  async pruneTokens(now: Date): Promise<void> {
    await this.db.query('DELETE FROM tokens WHERE expires_at < $1', [Math.floor(now.getTime() / 1000) - 3600]);
    await this.db.query('DELETE FROM console_sessions WHERE expires_at < $1', [now.toISOString()]);
  }

  // --- console sessions -----------------------------------------------------------------------

  async checkSession({ idHash, now, idleSince, touch }: SessionCheck): Promise<SessionRecord | undefined> {
    const live = `id_hash = $1 AND last_seen_at > $3 AND expires_at > $2
      AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id = console_sessions.api_key_id AND ${LIVE_ADMIN_KEY('$2')})`;
    const params = [idHash, now.toISOString(), idleSince.toISOString()];
    // A check that counts as activity moves the idle end in the same statement that judges it.
    const sql = touch ? `UPDATE console_sessions SET last_seen_at = $2 WHERE ${live} RETURNING *` : `SELECT * FROM console_sessions WHERE ${live}`;
    return (await this.db.query(sql, params)).map(toSession)[0];
  }

  /**
   * A key or a token changed: this process forgets it at once, and on PostgreSQL every replica
   * is told in the same transaction (NOTIFY is delivered on commit, never for a rollback),
   * whether or not this process keeps a cache (admin commands keep none).
   */
  async #changed(tx: Transaction, change: { apiKeyId?: string; jti?: string }): Promise<void> {
    this.options.cache?.forget(change);
    if (this.db.dialect === 'postgres') await tx.query('SELECT pg_notify($1, $2)', [STATE_CHANNEL, change.jti !== undefined ? `t:${change.jti}` : `k:${change.apiKeyId ?? ''}`]);
  }

  // --- audit ----------------------------------------------------------------------------------

  /** The chain's head, read under the chain's lock: the lock is held until the transaction ends. */
  #readHead(tx: Transaction): Promise<AuditHeadRow[]> {
    return tx.lockThen<AuditHeadRow>(AUDIT_LOCK, 'SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1');
  }

  async #appendAudit(tx: Transaction, records: AuditRecord[], undo: Array<() => void>, headRead?: Promise<AuditHeadRow[]>): Promise<StoredAuditRow[]> {
    if (records.length === 0) return [];
    const found = (await (headRead ?? this.#readHead(tx)))[0];
    const head = found ? toAuditHead(found) : { seq: 0, hash: GENESIS_HASH };
    this.#refuseIfWentBack(head);
    const rows = sealRows(head, records);
    for (let start = 0; start < rows.length; start += INSERT_CHUNK) {
      const { sql, params } = auditInsert(rows.slice(start, start + INSERT_CHUNK), this.db.dialect === 'sqlite');
      // One chunk (every request's batch) goes out with the COMMIT; an import's thousands of rows
      // go chunk by chunk, each with a statement timeout of its own.
      if (rows.length <= INSERT_CHUNK) tx.write(sql, params);
      else await tx.query(sql, params);
    }
    const revert = this.options.beforeCommit?.(rows);
    if (revert) undo.push(revert);
    return rows;
  }

  /**
   * A head older than the newest this process knew, or another row at its seq, is a database
   * restored in place: the transaction is rolled back (the request gets a 503, nothing charged
   * or served) and the rollback guard runs now rather than at its next tick. A head that moved
   * on past a restored copy is not told apart here; the guard's check compares hashes.
   */
  #refuseIfWentBack(head: AuditHead): void {
    const newest = this.#newest;
    if (newest === undefined) return;
    if (head.seq > newest.seq || (head.seq === newest.seq && head.hash === newest.hash)) return;
    const listener = this.#onWentBack;
    if (listener) setImmediate(listener);
    throw new StateWentBackError(newest.seq, head.seq);
  }

  /** A write transaction that appends audit rows; followers hear of them once committed. */
  async #write<T>(fn: (tx: Transaction, audit: (records: AuditRecord[], headRead?: Promise<AuditHeadRow[]>) => Promise<void>) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const durable = options.durable ?? true;
    let sealed: StoredAuditRow[] = [];
    const undo: Array<() => void> = [];
    let value: T;
    try {
      // The last row sealed, by seq and hash: found only if this transaction committed (its hash
      // chains over every row before it), what a COMMIT whose answer was lost is judged by.
      const committedIf = () => {
        const last = sealed.at(-1);
        return last === undefined ? undefined : { sql: 'SELECT seq FROM audit WHERE seq = $1 AND hash = $2', params: [last.seq, last.hash] };
      };
      value = await this.db.transaction((tx) => fn(tx, async (records, headRead) => void (sealed = await this.#appendAudit(tx, records, undo, headRead))), { ...options, durable, committedIf });
    } catch (error) {
      for (const revert of undo) revert();
      throw error;
    }
    const last = sealed.at(-1);
    if (last !== undefined) {
      if (durable) this.noteAuditHead({ seq: last.seq, hash: last.hash });
      this.options.afterCommit?.(sealed);
    }
    return value;
  }

  async queryAudit(query: AuditQuery): Promise<StoredAuditRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (clause: string, value: unknown) => where.push(clause.replace('?', `$${params.push(value)}`));
    if (query.apiKeyId !== undefined) add('api_key_id = ?', query.apiKeyId);
    if (query.event !== undefined) add('event = ?', query.event);
    if (query.outcome !== undefined) add('outcome = ?', query.outcome);
    if (query.environment !== undefined) add('environment = ?', query.environment);
    if (query.since !== undefined) add('time >= ?', query.since);
    if (query.until !== undefined) add('time < ?', query.until);
    if (query.beforeSeq !== undefined) add('seq < ?', query.beforeSeq);
    if (query.afterSeq !== undefined) add('seq > ?', query.afterSeq);
    const sql = `SELECT * FROM audit${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq ${query.ascending ? 'ASC' : 'DESC'} LIMIT $${params.push(query.limit)}`;
    return (await this.db.query(sql, params)).map(toAuditRow);
  }

  async auditBuckets(since: string, until: string, bucketMinutes: 1 | 10): Promise<AuditBuckets> {
    // ISO times sort and cut as text: 'YYYY-MM-DDTHH:MM' is a minute, one character less ten.
    const width = bucketMinutes === 1 ? 16 : 15;
    const rows = await this.db.query<{ bucket: string; success: unknown; failure: unknown }>(
      `SELECT substr(time, 1, ${width}) AS bucket,
              SUM(CASE WHEN outcome = 'success' THEN count ELSE 0 END) AS success,
              SUM(CASE WHEN outcome = 'failure' THEN count ELSE 0 END) AS failure
         FROM audit WHERE time >= $1 AND time < $2 AND status > 0 GROUP BY substr(time, 1, ${width}) ORDER BY bucket`,
      [since, until],
    );
    const suffix = bucketMinutes === 1 ? ':00.000Z' : '0:00.000Z';
    return { buckets: rows.map((row) => ({ start: `${row.bucket}${suffix}`, success: Number(row.success), failure: Number(row.failure) })) };
  }

  async auditAfter(afterSeq: number, limit: number): Promise<StoredAuditRow[]> {
    return (await this.db.query('SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit])).map(toAuditRow);
  }

  // --- import ---------------------------------------------------------------------------------

  /**
   * Imports a pre-database store's state once: false when this database already holds an import
   * (the mark commits with the rows, so processes racing at start import it once).
   */
  async importLegacy(legacy: LegacyState, source: string, now: Date): Promise<boolean> {
    // The keys were checked field by field as the file was read (api-key-file.ts); they are sealed
    // here, under this store's pepper, which db import made sure is the one they were made under.
    const seal = legacy.keys.length > 0 ? await this.options.seal() : undefined;
    return this.#write(async (tx, appendAudit) => {
      await tx.lock('rws:legacy-import');
      const marked = await tx.query('SELECT value FROM meta WHERE name = $1', ['legacy_import']);
      if (marked.length > 0) return false;
      for (const key of legacy.keys) {
        await tx.query(
          `INSERT INTO api_keys (id, name, prefix, hash, environments, key_patterns, max_ttl_minutes, created_at, expires_at, revoked_at, last_used_at, admin, fallback, grant_mac)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (id) DO NOTHING`,
          [key.id, key.name, key.prefix, key.hash, JSON.stringify(key.environments), JSON.stringify(key.key_patterns), key.max_ttl_minutes, key.created_at, key.expires_at, key.revoked_at, legacy.lastUsed.get(key.id) ?? null, key.admin ? 1 : 0, key.fallback ? 1 : 0, seal?.mac(key) ?? null],
        );
      }
      for (const t of legacy.tokens) {
        // The log never held a token's subject, scope or limit (the signed token carries them).
        await tx.query(
          `INSERT INTO tokens (jti, api_key_id, subject, environment, key_pattern, issued_at, expires_at, usage_limit, uses, revoked_at)
           VALUES ($1, $2, '', '', '', $3, $4, NULL, $5, $6) ON CONFLICT (jti) DO NOTHING`,
          [t.jti, t.apiKeyId, t.issuedAt, t.expiresAt, t.uses, t.revoked ? now.toISOString() : null],
        );
      }
      const summary: AuditRecord = {
        time: now.toISOString(),
        event: 'state.import',
        outcome: 'success',
        status: 0,
        error_code: null,
        api_key_id: null,
        jti: null,
        subject: `${legacy.keys.length} keys, ${legacy.tokens.length} live tokens, ${legacy.audit.length} audit lines from ${source}`.slice(0, 256),
        environment: null,
        keys: null,
        client: 'local',
        count: 1,
      };
      await appendAudit([...legacy.audit, summary]);
      await tx.query('INSERT INTO meta (name, value) VALUES ($1, $2)', ['legacy_import', now.toISOString()]);
      return true;
    });
  }

  async legacyImportDone(): Promise<boolean> {
    return (await this.db.query('SELECT value FROM meta WHERE name = $1', ['legacy_import'])).length > 0;
  }

  async markLegacyImport(value: string, now: Date): Promise<void> {
    await this.db.query('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', ['legacy_import', `${value} ${now.toISOString()}`]);
  }

  // --- the rest -------------------------------------------------------------------------------

  async withLock<T>(name: string, fn: (stillHeld: () => Promise<void>) => Promise<T>): Promise<T> {
    const lock = await this.db.lock(name);
    try {
      return await fn(() => lock.check());
    } finally {
      await lock.release();
    }
  }

  schemaVersion(): Promise<number> {
    return currentVersion(this.db);
  }

  async close(): Promise<void> {
    await this.#queue.drained();
    await this.options.cache?.close();
    await this.db.close();
  }
}

/**
 * What must survive a power loss before the answer: a mint, a revocation, and a use of a
 * usage-limited token (else a spent use could come back). A lost mint would fail closed, but its
 * holder would be refused a token it was just given (a watching wrapper takes that for a
 * revocation; a token handed to a CI job is simply dead), and the trail would lose the token's
 * origin. Audit rows of unlimited reads survive a crash of the server and reach the disk with the
 * next durable commit.
 */
function needsDurability({ effect, durable }: Commit): boolean {
  return durable === true || (effect !== undefined && (effect.kind !== 'use' || effect.token.usage_limit !== null));
}

/** The uses of one presented token in a batch. */
interface UseGroup {
  token: PresentedToken;
  indices: number[];
  now: Date;
}

type AuditHeadRow = { seq: unknown; hash: unknown };

/** A statement sent now whose answer is awaited later: a failure meanwhile is not an unhandled rejection. */
function answerLater<T>(answer: Promise<T>): Promise<T> {
  answer.catch(() => undefined);
  return answer;
}

/** Which row an effect locks first, for the one lock order: API keys (by id), console sessions (by id hash), then tokens (by jti). */
function lockRank(effect: Effect | undefined): number {
  if (effect === undefined) return 3;
  // A sign-in that ends the browser's old session contends only for that row (its own is new), as a sign-out does.
  if (effect.kind === 'session.delete' || (effect.kind === 'session.create' && effect.replaces !== undefined)) return 1;
  if (effect.kind === 'issue' || effect.kind === 'apikey.create' || effect.kind === 'apikey.revoke' || effect.kind === 'session.create') return 0;
  // Revocations and uses: tokens, by jti.
  return 2;
}

function lockTarget(effect: Effect | undefined): string {
  if (effect === undefined) return '';
  switch (effect.kind) {
    case 'issue':
      return effect.token.api_key_id;
    case 'apikey.create':
      return effect.record.id;
    case 'apikey.revoke':
      return effect.id;
    case 'session.create':
      return effect.replaces ?? effect.session.api_key_id;
    case 'session.delete':
      return effect.idHash;
    case 'revoke':
      return effect.jti;
    default:
      return effect.token.jti;
  }
}

/** Tokens live now: not revoked, not expired, not spent, and their key live ($1 ISO time, $2 epoch seconds). */
const LIVE_TOKENS = `CASE WHEN k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $1) THEN
    (SELECT COUNT(*) FROM tokens t WHERE t.api_key_id = k.id AND t.revoked_at IS NULL AND t.expires_at > $2 AND (t.usage_limit IS NULL OR t.uses < t.usage_limit))
  ELSE 0 END AS live_tokens`;

/** The key `k` is a live admin key at the ISO time in parameter `at`. */
const LIVE_ADMIN_KEY = (at: string): string => `k.admin = 1 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > ${at})`;

const epochSeconds = (date: Date): number => Math.floor(date.getTime() / 1000);

/** PostgreSQL's deadlock (40P01) and serialisation failure (40001): the transaction did nothing. */
function isRetryable(error: unknown): boolean {
  const code = (error as { cause?: { code?: unknown }; code?: unknown })?.cause?.code ?? (error as { code?: unknown })?.code;
  return code === '40P01' || code === '40001';
}
