// Group commit: the commits asked for during one event-loop turn go to the database in one
// transaction, and commits asked for while a transaction is in flight form the next one. Each
// request still gets its own outcome; if the transaction fails, every request in it fails and
// nothing of it was stored (so none of them was charged a use).

export class CommitQueue<Item, Result> {
  #pending: Array<{ item: Item; resolve: (result: Result) => void; reject: (error: unknown) => void }> = [];
  #running = false;
  #scheduled = false;
  #waiters: Array<() => void> = [];

  constructor(
    private readonly run: (items: Item[]) => Promise<Result[]>,
    private readonly maxBatch = 500,
  ) {}

  push(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (!this.#running && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    this.#scheduled = false;
    this.#running = true;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.maxBatch);
      try {
        const results = await this.run(batch.map((entry) => entry.item));
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
