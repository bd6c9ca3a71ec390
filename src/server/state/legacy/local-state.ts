// StateStore in files of the store directory:
// - api-keys.json, written by the admin commands (whole-file replace under a lock) and re-read
//   by a running server when its identity (inode, size, mtime) changes, checked at most every
//   250 ms, so a new or revoked key takes effect within a second;
// - token-state.log, append-only JSON lines written only by the server (issues, uses,
//   revocations), replayed at start and compacted then, fsynced before any answer relies on it;
// - the audit log, append-only JSON lines, written before the answer is sent (synced on close).
import { promises as fs } from 'node:fs';
import { RwsError } from '../../../errors.js';
import { AppendLog } from '../../audit/append-log.js';
import { readPrivateFile, replaceFile, withLock } from '../../store/files.js';
import type { ApiKeyRecord, ApiKeyView, IssuedToken, PresentedToken, StateStore, TokenStatus, UseOutcome } from '../state-store.js';
import { parseApiKeysFile } from './api-key-file.js';

const RECHECK_MS = 250;

interface TokenState {
  uses: number;
  revoked: boolean;
  exp: number;
  key: string | undefined;
}

type StateRecord =
  | { t: 'issue'; jti: string; key: string; exp: number; at: string }
  | { t: 'use'; jti: string; exp: number; n?: number }
  | { t: 'revoke'; jti: string; exp: number }
  | { t: 'keyuse'; key: string; at: string };

export interface LocalStateOptions {
  apiKeysFile: string;
  stateLog: string;
  /** Only the server writes audit lines; admin commands pass nothing. */
  auditLog?: string;
  /** Rewrite the state log without expired tokens (the server does this at start). */
  compact?: boolean;
  now?: () => number;
}

export class LocalStateStore implements StateStore {
  readonly #tokens = new Map<string, TokenState>();
  readonly #lastUsed = new Map<string, string>();
  #keys: ApiKeyRecord[] = [];
  #keysIdentity = '';
  #keysCheckedAt = -Infinity;
  #stateLog: Promise<AppendLog> | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly options: LocalStateOptions,
    private readonly audit: AppendLog | undefined,
  ) {}

  static async open(options: LocalStateOptions): Promise<LocalStateStore> {
    // Audit lines are written (to the kernel) before the answer, which survives a crash of the
    // server; an fsync per batch would also survive a power cut but costs most of the throughput
    // (see bench/server.mjs). Batches are written by group commit, never one syscall per line.
    const audit = options.auditLog === undefined ? undefined : await AppendLog.open(options.auditLog, { sync: false });
    const store = new LocalStateStore(options, audit);
    await store.#replay();
    if (options.compact) await store.#compact();
    await store.#refreshKeys(true);
    if (options.compact) {
      store.#pruneTimer = setInterval(() => store.#prune(), 60_000);
      store.#pruneTimer.unref();
    }
    return store;
  }

  #now(): number {
    return this.options.now?.() ?? Date.now();
  }

  // --- API keys -------------------------------------------------------------------------------

  async listApiKeys(): Promise<ApiKeyView[]> {
    await this.#refreshKeys(true);
    return this.#keys.map((key) => ({ ...key, last_used_at: this.#lastUsed.get(key.id) ?? null }));
  }

  async findApiKeys(prefix: string): Promise<ApiKeyRecord[]> {
    await this.#refreshKeys(false);
    const found = this.#keys.filter((key) => key.prefix === prefix);
    if (found.length > 0) return found;
    // A key created a moment ago works at once: an unknown prefix is worth one stat.
    await this.#refreshKeys(true);
    return this.#keys.filter((key) => key.prefix === prefix);
  }

  async addApiKey(record: ApiKeyRecord): Promise<void> {
    await this.#editKeys((keys) => [...keys, record]);
  }

  async revokeApiKey(id: string, at: Date): Promise<boolean> {
    let found = false;
    await this.#editKeys((keys) =>
      keys.map((key) => {
        if (key.id !== id) return key;
        found = true;
        return key.revoked_at === null ? { ...key, revoked_at: at.toISOString() } : key;
      }),
    );
    return found;
  }

  async #editKeys(edit: (keys: ApiKeyRecord[]) => ApiKeyRecord[]): Promise<void> {
    const file = this.options.apiKeysFile;
    await withLock(file, async () => {
      const keys = await this.#readKeys();
      await replaceFile(file, `${JSON.stringify({ version: 1, keys: edit(keys) }, null, 2)}\n`);
    });
    await this.#refreshKeys(true);
  }

  async #readKeys(): Promise<ApiKeyRecord[]> {
    try {
      return parseApiKeysFile(await readPrivateFile(this.options.apiKeysFile));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  async #refreshKeys(force: boolean): Promise<void> {
    const now = this.#now();
    if (!force && now - this.#keysCheckedAt < RECHECK_MS) return;
    this.#keysCheckedAt = now;
    const stat = await fs.stat(this.options.apiKeysFile, { bigint: true }).catch(() => undefined);
    const identity = stat === undefined ? 'absent' : `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    if (identity === this.#keysIdentity) return;
    this.#keys = await this.#readKeys();
    this.#keysIdentity = identity;
  }

  #keyIsLive(id: string): boolean {
    const key = this.#keys.find((candidate) => candidate.id === id);
    if (key === undefined || key.revoked_at !== null) return false;
    return key.expires_at === null || Date.parse(key.expires_at) > this.#now();
  }

  // --- tokens ---------------------------------------------------------------------------------

  async recordIssue(token: IssuedToken, at: Date): Promise<void> {
    const iso = at.toISOString();
    this.#apply({ t: 'issue', jti: token.jti, key: token.apiKeyId, exp: token.expiresAt, at: iso });
    await this.#write({ t: 'issue', jti: token.jti, key: token.apiKeyId, exp: token.expiresAt, at: iso });
  }

  async checkToken(token: PresentedToken): Promise<TokenStatus> {
    await this.#refreshKeys(false);
    return { outcome: this.#check(token), apiKeyId: this.#tokens.get(token.jti)?.key ?? null };
  }

  #check(token: PresentedToken): UseOutcome {
    const state = this.#tokens.get(token.jti);
    if (state === undefined) return 'ok';
    if (state.revoked || (state.key !== undefined && !this.#keyIsLive(state.key))) return 'revoked';
    if (token.usageLimit !== null && state.uses >= token.usageLimit) return 'exhausted';
    return 'ok';
  }

  async consumeUse(token: PresentedToken): Promise<UseOutcome> {
    await this.#refreshKeys(false);
    // From here to the increment nothing awaits: this is the critical section that makes the
    // count exact however many requests race for the last use.
    const outcome = this.#check(token);
    if (outcome !== 'ok' || token.usageLimit === null) return outcome;
    const state = this.#entry(token.jti, token.expiresAt);
    state.uses++;
    try {
      await this.#write({ t: 'use', jti: token.jti, exp: token.expiresAt });
    } catch (error) {
      state.uses--;
      throw error;
    }
    return 'ok';
  }

  async revokeToken(token: PresentedToken): Promise<void> {
    const state = this.#entry(token.jti, token.expiresAt);
    if (state.revoked) return;
    state.revoked = true;
    await this.#write({ t: 'revoke', jti: token.jti, exp: token.expiresAt });
  }

  #entry(jti: string, exp: number): TokenState {
    let state = this.#tokens.get(jti);
    if (state === undefined) {
      state = { uses: 0, revoked: false, exp, key: undefined };
      this.#tokens.set(jti, state);
    }
    return state;
  }

  #apply(record: StateRecord): void {
    switch (record.t) {
      case 'issue':
        this.#entry(record.jti, record.exp).key = record.key;
        this.#lastUsed.set(record.key, record.at);
        break;
      case 'keyuse':
        this.#lastUsed.set(record.key, record.at);
        break;
      case 'use':
        this.#entry(record.jti, record.exp).uses += record.n ?? 1;
        break;
      case 'revoke':
        this.#entry(record.jti, record.exp).revoked = true;
        break;
    }
  }

  async #write(record: StateRecord): Promise<void> {
    this.#stateLog ??= AppendLog.open(this.options.stateLog, { sync: true });
    try {
      await (await this.#stateLog).append(JSON.stringify(record));
    } catch (cause) {
      throw new RwsError('RWS_STATE_UNAVAILABLE', 'the token state log could not be written', { cause });
    }
  }

  async #replay(): Promise<void> {
    let text: string;
    try {
      text = await readPrivateFile(this.options.stateLog);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    // A crash can leave the last line half-written (no newline): it is dropped, and the server's
    // compaction at start rewrites the file without it. Any other bad line means damage.
    const complete = text.split('\n').slice(0, -1);
    for (const [index, line] of complete.entries()) {
      const record = parseStateRecord(line);
      if (record === undefined) {
        throw new RwsError('RWS_STATE_INVALID', `${this.options.stateLog} line ${index + 1} is not a state record`, {
          hint: 'the token state log was damaged; restore it from a backup',
        });
      }
      this.#apply(record);
    }
  }

  #prune(): void {
    const now = Math.floor(this.#now() / 1000);
    for (const [jti, state] of this.#tokens) if (state.exp + 60 < now) this.#tokens.delete(jti);
  }

  async #compact(): Promise<void> {
    this.#prune();
    const records: StateRecord[] = [];
    for (const [key, at] of this.#lastUsed) records.push({ t: 'keyuse', key, at });
    for (const [jti, state] of this.#tokens) {
      if (state.key !== undefined) records.push({ t: 'issue', jti, key: state.key, exp: state.exp, at: this.#lastUsed.get(state.key) ?? '' });
      if (state.uses > 0) records.push({ t: 'use', jti, exp: state.exp, n: state.uses });
      if (state.revoked) records.push({ t: 'revoke', jti, exp: state.exp });
    }
    // keyuse records come first so that an issue record's `at` never moves a key's last use back.
    const text = records.map((record) => `${JSON.stringify(record)}\n`).join('');
    await replaceFile(this.options.stateLog, text);
  }

  async appendAudit(line: string): Promise<void> {
    if (this.audit === undefined) throw new RwsError('RWS_AUDIT_UNAVAILABLE', 'no audit log is open');
    try {
      await this.audit.append(line);
    } catch (cause) {
      throw new RwsError('RWS_AUDIT_UNAVAILABLE', 'the audit log could not be written', { cause });
    }
  }

  async close(): Promise<void> {
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    await this.audit?.close();
    if (this.#stateLog) await (await this.#stateLog).close();
  }
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isInt = (value: unknown): value is number => Number.isSafeInteger(value);

function parseStateRecord(line: string): StateRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  switch (r.t) {
    case 'issue':
      return isString(r.jti) && isString(r.key) && isInt(r.exp) && isString(r.at) ? { t: 'issue', jti: r.jti, key: r.key, exp: r.exp, at: r.at } : undefined;
    case 'use':
      return isString(r.jti) && isInt(r.exp) && (r.n === undefined || isInt(r.n)) ? { t: 'use', jti: r.jti, exp: r.exp, n: (r.n as number | undefined) ?? 1 } : undefined;
    case 'revoke':
      return isString(r.jti) && isInt(r.exp) ? { t: 'revoke', jti: r.jti, exp: r.exp } : undefined;
    case 'keyuse':
      return isString(r.key) && isString(r.at) ? { t: 'keyuse', key: r.key, at: r.at } : undefined;
    default:
      return undefined;
  }
}
