// A database restored from an older backup would revive what was revoked or spent after the
// backup: the rows that said so are gone. Each server remembers, in its store directory and per
// database (by the id the database keeps in its backups), the newest audit row it has seen (seq
// and hash); the audit trail only ever grows, so a head older than that, or a different row at
// that seq, means the state went back in time. Then every token minted before now is revoked, and
// the operator is told. A database made anew has a new id and no issue records: its tokens are
// unknown and refused anyway. The file is read before the database, so another server writing it
// meanwhile can only make it look older.
//
// Two things it cannot see by polling alone: a commit that finds the chain went back calls it at
// once (sql-state-store.ts, #refuseIfWentBack), and an SQLite file deleted or replaced under the
// server is noticed here, by its identity, and refuses everything from then on (see checkStorage).
import { localChange } from '../audit/record.js';
import { readPrivateFile, replaceFile } from '../store/files.js';
import type { SqlStateStore } from './sql/sql-state-store.js';
import { StateReplacedError } from './state-errors.js';
import { OutageLog } from './outage-log.js';
import { GuardFailures } from './guard-failures.js';

const CHECK_EVERY_MS = 1_000;

export interface Seen {
  seq: number;
  hash: string;
}

/** Databases remembered per store: one per kind a store was served with is plenty. */
const MAX_REMEMBERED = 8;

export class RollbackGuard {
  #timer: NodeJS.Timeout | undefined;
  #written = -1;
  /** The database id of the last check: the store's newest head belongs to it. */
  #id: string | undefined;
  #checking = false;
  #checkAgain = false;
  readonly #outage: OutageLog;
  readonly #failures: GuardFailures;

  /** `outage`: the server's, so that a replaced file is said once whoever finds it first. */
  constructor(
    private readonly state: SqlStateStore,
    private readonly file: string,
    private readonly log: (line: string) => void,
    outage?: OutageLog,
  ) {
    this.#outage = outage ?? new OutageLog(log);
    this.#failures = new GuardFailures(log);
  }

  /** Checks now, then every second; resolves after the first check. */
  async start(): Promise<void> {
    await this.check();
    this.state.onWentBack(() => this.#checkInBackground(true));
    this.#timer = setInterval(() => this.#checkInBackground(false), CHECK_EVERY_MS);
    this.#timer.unref();
  }

  /**
   * One check at a time: while the database is locked or unreachable a check can take longer
   * than the interval, and checks piling up would queue writes ahead of every request's. A
   * commit that found the chain gone back cannot wait for the next tick: it gets one more check
   * right after the running one.
   */
  #checkInBackground(urgent: boolean): void {
    if (this.#checking) {
      if (urgent) this.#checkAgain = true;
      return;
    }
    this.#checking = true;
    void this.check()
      .then(
        () => this.#failures.ran(),
        (error: unknown) => this.#failures.failed(error),
      )
      .finally(() => {
        this.#checking = false;
        if (this.#checkAgain) {
          this.#checkAgain = false;
          this.#checkInBackground(false);
        }
      });
  }

  async check(): Promise<boolean> {
    if (await this.#replaced()) return false;
    const file = await this.#read();
    const id = await this.state.databaseId();
    // Another database in the file's place (an in-place restore of another store's backup): the
    // rows this process committed belong to the old one's chain.
    if (this.#id !== undefined && this.#id !== id) this.state.forgetAuditHead();
    this.#id = id;
    const seen = newer(file[id], this.state.newestAuditHead());
    const head = await this.state.auditHead();
    let rolledBack = false;
    if (seen !== undefined && seen.seq > 0) {
      const hashThen = seen.seq <= head.seq ? await this.state.auditHashAt(seen.seq) : undefined;
      rolledBack = hashThen !== seen.hash;
    }
    if (rolledBack) {
      const now = new Date();
      await this.state.revokeTokensIssuedBefore(now);
      await this.state.commit({ audit: () => localChange('state.rollback', null, now, `audit head ${head.seq}, this host saw ${seen?.seq}`) }, now);
      this.log(
        `secrets-server: error RWS_STATE_ROLLED_BACK: the state database is older than what this server saw (audit row ${seen?.seq}, now ${head.seq}); every token minted before ${now.toISOString()} was revoked (hint: re-revoke API keys revoked since the backup; see secrets-server audit)`,
      );
    }
    if (head.seq !== this.#written || rolledBack) {
      // Rows of unlimited reads commit without an fsync: make everything up to this head durable
      // before vouching for it, or a power loss would look like a rollback.
      await this.state.syncToDisk();
      const others = Object.entries(file).filter(([other]) => other !== id).slice(-(MAX_REMEMBERED - 1));
      await replaceFile(this.file, `${JSON.stringify(Object.fromEntries([...others, [id, head]]))}\n`);
      this.#written = head.seq;
    }
    // Durable now (synced above, or by an earlier check): commits must find it from here on.
    if (!rolledBack) this.state.noteAuditHead(head);
    return rolledBack;
  }

  /**
   * The SQLite file deleted, replaced or truncated under this server: nothing in it may be trusted
   * or recorded any more (state-seen.json keeps what was seen before). Said once; every request
   * gets a 503 from then on, and a restart opens what is at the path now.
   */
  async #replaced(): Promise<boolean> {
    try {
      await this.state.checkStorage();
      return false;
    } catch (error) {
      if (!(error instanceof StateReplacedError)) throw error;
      this.#outage.replaced(error);
      return true;
    }
  }

  async #read(): Promise<Record<string, Seen>> {
    const seen = await readSeen(this.file);
    // A damaged file cannot vouch for this database: a rollback of unknown depth.
    return seen ?? { [await this.state.databaseId()]: { seq: Number.MAX_SAFE_INTEGER, hash: '' } };
  }

  /** Stops checking, and records the head one last time (what this server saw up to its close). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.check().catch(() => undefined);
  }
}

/** The later of two records of the chain's head (by seq; the file's on a tie). */
function newer(a: Seen | undefined, b: Seen | undefined): Seen | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.seq > a.seq ? b : a;
}

/** What this host's processes saw, per database id; {} when nothing yet; undefined when damaged. */
export async function readSeen(file: string): Promise<Record<string, Seen> | undefined> {
  let text: string;
  try {
    text = await readPrivateFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  const seen: Record<string, Seen> = {};
  try {
    const value = JSON.parse(text) as Record<string, Partial<Seen>>;
    for (const [id, entry] of Object.entries(value)) {
      if (!Number.isSafeInteger(entry?.seq) || typeof entry?.hash !== 'string') return undefined;
      seen[id] = { seq: entry.seq as number, hash: entry.hash };
    }
    return seen;
  } catch {
    return undefined;
  }
}
