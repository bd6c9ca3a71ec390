// Resources that must not outlive the run (the secrets file above all). Registered before they
// are created; released from `finally`, from the signal path and, as a last resort, from the
// synchronous process 'exit' event. Every release is idempotent.

export interface Disposable {
  dispose(): Promise<void>;
  disposeSync(): void;
}

export class Cleanup {
  private readonly items: Disposable[] = [];
  private closed = false;
  private readonly onExit = (): void => this.runSync();

  constructor() {
    process.once('exit', this.onExit);
  }

  /**
   * Registers a resource; after the run has been cleaned up, a late resource is released at once,
   * synchronously: the process may die of the signal that ended the run before a promise settles.
   */
  add(item: Disposable): void {
    if (this.closed) {
      try {
        item.disposeSync();
      } catch {
        // As in runSync: nothing more can be done for it.
      }
      return;
    }
    this.items.push(item);
  }

  /**
   * A resource released before the end (a watch's previous child and its file): no longer held,
   * so that a wrapper restarting its child for weeks does not keep every child it ever had.
   */
  forget(item: Disposable): void {
    const index = this.items.indexOf(item);
    if (index !== -1) this.items.splice(index, 1);
  }

  async run(): Promise<void> {
    this.closed = true;
    process.removeListener('exit', this.onExit);
    for (const item of this.items.splice(0).reverse()) {
      try {
        await item.dispose();
      } catch {
        item.disposeSync();
      }
    }
  }

  runSync(): void {
    this.closed = true;
    for (const item of this.items.splice(0).reverse()) {
      try {
        item.disposeSync();
      } catch {
        // Nothing more can be done while the process exits.
      }
    }
  }
}

/** Raised inside the flow when a stop signal arrives before the child has started. */
export class Stopped extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`stopped by ${signal}`);
  }
}

/** Lets a signal handler interrupt whatever step of the flow is awaiting. */
export class StopSwitch {
  signal: NodeJS.Signals | undefined;
  /** Aborted by the first stop signal, for steps that must wind down rather than be dropped. */
  readonly controller = new AbortController();
  private reject: ((error: Stopped) => void) | undefined;
  private readonly stopped: Promise<never>;
  private hurry: (() => void) | undefined;
  /** Settles on a second stop signal: whoever waits for a wind-down stops waiting. */
  readonly again: Promise<void> = new Promise((resolve) => {
    this.hurry = resolve;
  });

  constructor() {
    this.stopped = new Promise<never>((_, reject) => {
      this.reject = reject;
    });
    this.stopped.catch(() => undefined);
  }

  trigger(signal: NodeJS.Signals): void {
    if (this.signal) {
      this.hurry?.();
      return;
    }
    this.signal = signal;
    this.controller.abort(new Stopped(signal));
    this.reject?.(new Stopped(signal));
  }

  race<T>(step: Promise<T>): Promise<T> {
    if (this.signal) return Promise.reject(new Stopped(this.signal));
    return Promise.race([step, this.stopped]);
  }
}
