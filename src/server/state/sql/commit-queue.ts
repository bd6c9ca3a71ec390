// Group commit: the commits asked for during one event-loop turn go to the database in one
// transaction, and commits asked for while a transaction is in flight form the next one. Each
// request still gets its own outcome; if the transaction fails, every request in it fails and
// nothing of it was stored (so none of them was charged a use).
//
// With `maxWaitMs`, a commit fails by its own deadline (that long after it was asked for) while it
// still waits for its turn, and a batch runs with the earliest deadline of its commits: when the
// database hangs, a request is answered within the bound, never after every failing batch queued
// before it has timed out in turn.

interface Entry<Item, Result> {
  item: Item;
  deadline: number;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export interface CommitQueueOptions {
  maxBatch?: number;
  /** How long a commit may take from when it is asked for; unbounded when undefined. */
  maxWaitMs?: number;
  /** The error a commit that waited past its deadline fails with. */
  expired?: () => Error;
}

export class CommitQueue<Item, Result> {
  #pending: Array<Entry<Item, Result>> = [];
  #running = false;
  #scheduled = false;
  #waiters: Array<() => void> = [];
  readonly #maxBatch: number;
  // One timer for the queue, not one per commit (a timer per request cost the hot path): it is
  // due with the oldest waiting commit, since deadlines follow the order commits are asked in.
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly run: (items: Item[], deadline: number | undefined) => Promise<Result[]>,
    private readonly options: CommitQueueOptions = {},
  ) {
    this.#maxBatch = options.maxBatch ?? 500;
  }

  push(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const { maxWaitMs } = this.options;
      const entry: Entry<Item, Result> = { item, deadline: maxWaitMs === undefined ? Infinity : Date.now() + maxWaitMs, resolve, reject };
      this.#pending.push(entry);
      if (maxWaitMs !== undefined && this.#timer === undefined) this.#arm();
      if (!this.#running && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  /** Sets the timer for the oldest commit still waiting, if any. */
  #arm(): void {
    const oldest = this.#pending[0];
    if (oldest === undefined || !Number.isFinite(oldest.deadline)) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#expire();
      this.#arm();
    }, Math.max(0, oldest.deadline - Date.now()));
  }

  /** Commits still waiting for their turn at their deadline fail; one in a running batch waits for it. */
  #expire(): void {
    const now = Date.now();
    while (this.#pending.length > 0 && (this.#pending[0] as Entry<Item, Result>).deadline <= now) {
      (this.#pending.shift() as Entry<Item, Result>).reject(this.options.expired?.() ?? new Error('the commit waited past its deadline'));
    }
  }

  async #drain(): Promise<void> {
    this.#scheduled = false;
    this.#running = true;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#maxBatch);
      if (this.#pending.length === 0 && this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
      // The oldest commit's: deadlines follow the order of the queue.
      const deadline = (batch[0] as Entry<Item, Result>).deadline;
      try {
        const results = await this.run(batch.map((entry) => entry.item), Number.isFinite(deadline) ? deadline : undefined);
        batch.forEach((entry, index) => entry.resolve(results[index] as Result));
      } catch (error) {
        for (const entry of batch) entry.reject(error);
      }
    }
    this.#running = false;
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Resolves once everything pushed so far has been committed or failed. */
  drained(): Promise<void> {
    if (!this.#running && !this.#scheduled) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
