// When a server's secret edits run: one at a time per environment, and at most a few
// environments at a time. Within an environment, an edit waits for the one before it in this
// process rather than beside it for the database lock `sops:ENV`: both would wait the same, and
// side by side each would hold a lock attempt of its own (with PostgreSQL, a session and a
// thread). Across environments, edits run side by side: one waiting for its environment's lock
// (held by a stalled `secret set`, for up to the lock's bound) must not delay another's. Bounded
// all the same, since every environment's edit waits or holds with a session of its own and an
// admin may edit many environments at once (a PUT to a new name makes one): PostgreSQL refuses
// connections past max_connections, to every process and replica alike.

/** Environments whose edits may run at once in one process; the rest wait for a turn, in order. */
export const EDITS_AT_ONCE = 4;

export class EditTurns {
  /** Per environment, the last edit asked for: the next one runs after it, whatever its outcome. */
  readonly #last = new Map<string, Promise<void>>();
  /** Edits whose environment's turn came, waiting for one of the `atOnce` to end. */
  readonly #waiting: Array<() => void> = [];
  #running = 0;

  constructor(private readonly atOnce: number = EDITS_AT_ONCE) {}

  run<T>(environment: string, edit: () => Promise<T>): Promise<T> {
    const before = this.#last.get(environment) ?? Promise.resolve();
    const done = before.then(() => this.#inSlot(edit));
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.#last.set(environment, settled);
    // An environment with nothing queued is forgotten: the map holds no more than the edits do.
    void settled.then(() => {
      if (this.#last.get(environment) === settled) this.#last.delete(environment);
    });
    return done;
  }

  async #inSlot<T>(edit: () => Promise<T>): Promise<T> {
    if (this.#running < this.atOnce) this.#running++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await edit();
    } finally {
      // Handed straight to the next in line, so no later edit can take it first.
      const next = this.#waiting.shift();
      if (next === undefined) this.#running--;
      else next();
    }
  }
}
