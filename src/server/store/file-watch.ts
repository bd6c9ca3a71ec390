// Tells long-polls when an environment's SOPS file may have changed. Each server watches the
// store directory it serves (so each replica its own checkout): inotify through fs.watch for
// changes within a few milliseconds, and, while anyone listens, a once-a-second look at each
// watched file's inode, size and times, because fs.watch misses changes made by other hosts on
// a shared volume (NFS) and can fail outright (inotify limits). A burst of events (sops writing
// in place, a rename into place) is told once, after it settles. Listeners re-read the file and
// decide whether what they serve changed: a notice is a hint, never a claim.
import { type FSWatcher, promises as fs, watch } from 'node:fs';
import { SECRETS_SUFFIX, type StorePaths } from './layout.js';

const POLL_MS = 1_000;
const SETTLE_MS = 25;

export type Unsubscribe = () => void;

export class StoreWatcher {
  readonly #listeners = new Map<string, Set<() => void>>();
  /** The file identity last seen per watched environment, for the poll. */
  readonly #seen = new Map<string, string>();
  readonly #settling = new Map<string, NodeJS.Timeout>();
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #watchFailed = false;

  constructor(
    private readonly paths: StorePaths,
    /** Runs once per notice, before the listeners: the store drops what it cached of the file. */
    private readonly invalidate: (environment: string) => void,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** Calls `listener` after each change of `environment`'s file, until unsubscribed. */
  subscribe(environment: string, listener: () => void): Unsubscribe {
    let listeners = this.#listeners.get(environment);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(environment, listeners);
      void this.#identity(environment).then((identity) => {
        if (this.#listeners.has(environment) && !this.#seen.has(environment)) this.#seen.set(environment, identity);
      });
    }
    listeners.add(listener);
    this.#start();
    const own = listeners;
    return () => {
      own.delete(listener);
      if (own.size > 0 || this.#listeners.get(environment) !== own) return;
      this.#listeners.delete(environment);
      this.#seen.delete(environment);
      clearTimeout(this.#settling.get(environment));
      this.#settling.delete(environment);
      if (this.#listeners.size === 0) this.#stop();
    };
  }

  #start(): void {
    if (this.#poll === undefined) {
      this.#poll = setInterval(() => void this.#pollAll(), POLL_MS);
      this.#poll.unref();
    }
    if (this.#watcher !== undefined || this.#watchFailed) return;
    try {
      this.#watcher = watch(this.paths.dir, { persistent: false }, (_event, filename) => this.#onEvent(filename));
      this.#watcher.on('error', (error: NodeJS.ErrnoException) => this.#watchFailure(error));
    } catch (error) {
      this.#watchFailure(error as NodeJS.ErrnoException);
    }
  }

  #stop(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    this.#watcher?.close();
    this.#watcher = undefined;
    for (const timer of this.#settling.values()) clearTimeout(timer);
    this.#settling.clear();
  }

  #watchFailure(error: NodeJS.ErrnoException): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    // Told once: the poll goes on and changes are still seen, within a second.
    if (!this.#watchFailed) this.log(`secrets-server: watching ${this.paths.dir} failed (${error.code ?? error.name}); long-polls see changes within a second instead`);
    this.#watchFailed = true;
  }

  #onEvent(filename: string | Buffer | null): void {
    if (filename === null) {
      for (const environment of this.#listeners.keys()) this.#settle(environment);
      return;
    }
    const name = filename.toString();
    if (!name.endsWith(SECRETS_SUFFIX)) return;
    const environment = name.slice(0, -SECRETS_SUFFIX.length);
    if (this.#listeners.has(environment)) this.#settle(environment);
  }

  #settle(environment: string): void {
    if (this.#settling.has(environment)) return;
    const timer = setTimeout(() => {
      this.#settling.delete(environment);
      void this.#identity(environment).then((identity) => this.#notify(environment, identity));
    }, SETTLE_MS);
    timer.unref();
    this.#settling.set(environment, timer);
  }

  async #pollAll(): Promise<void> {
    for (const environment of [...this.#listeners.keys()]) {
      const identity = await this.#identity(environment);
      if (this.#seen.get(environment) !== identity && !this.#settling.has(environment)) this.#notify(environment, identity);
    }
  }

  #notify(environment: string, identity: string): void {
    const listeners = this.#listeners.get(environment);
    if (listeners === undefined) return;
    this.#seen.set(environment, identity);
    this.invalidate(environment);
    for (const listener of [...listeners]) listener();
  }

  #identity(environment: string): Promise<string> {
    return fileIdentity(this.paths.secrets(environment));
  }
}

/** Which version of a file is on disk, by its inode, size and times; `absent` when there is none. */
export async function fileIdentity(file: string): Promise<string> {
  const stat = await fs.lstat(file, { bigint: true }).catch(() => undefined);
  return stat === undefined ? 'absent' : `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
}
