// An append-only file of JSON lines with group commit: lines appended together go out in one
// write, so a busy server makes one system call per batch, not one per request. `append`
// resolves only once its line has been written (and, for a synced log, fsynced).
//
// Two ways of writing a batch:
// - synced logs (the token state) write and fdatasync on libuv's thread pool: lines appended while
//   a batch is in flight form the next batch, and the event loop never waits for the disk;
// - unsynced logs (the audit log) gather the lines of one event-loop turn and write them with one
//   writeSync at the end of the turn (setImmediate). A write into the page cache takes a couple of
//   microseconds; handing it to the thread pool costs about ten times that in CPU per batch (thread
//   wake-ups and the promise round trip), which was the largest cost of a secret read.
import { constants, promises as fs, writeSync } from 'node:fs';

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class AppendLog {
  #lines: string[] = [];
  #waiters: Waiter[] = [];
  #flushing = false;
  #scheduled = false;
  #closed = false;

  private constructor(
    private readonly handle: fs.FileHandle,
    private readonly sync: boolean,
  ) {}

  static async open(file: string, options: { sync: boolean }): Promise<AppendLog> {
    const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;
    return new AppendLog(await fs.open(file, flags, 0o600), options.sync);
  }

  append(line: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#closed) {
        reject(new Error('the log is closed'));
        return;
      }
      this.#lines.push(`${line}\n`);
      this.#waiters.push({ resolve, reject });
      if (this.sync) {
        if (!this.#flushing) void this.#flush();
      } else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#writeBatch());
      }
    });
  }

  /** Unsynced logs: everything appended during this event-loop turn, in one write. */
  #writeBatch(): void {
    this.#scheduled = false;
    const { data, waiters } = this.#take();
    try {
      let offset = 0;
      while (offset < data.length) offset += writeSync(this.handle.fd, data, offset);
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
      return;
    }
    for (const waiter of waiters) waiter.resolve();
  }

  #take(): { data: Buffer; waiters: Waiter[] } {
    const data = Buffer.from(this.#lines.join(''), 'utf8');
    const waiters = this.#waiters;
    this.#lines = [];
    this.#waiters = [];
    return { data, waiters };
  }

  /** Synced logs: one write and one fdatasync per batch, off the event loop. */
  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#lines.length > 0) {
      const { data, waiters } = this.#take();
      try {
        let offset = 0;
        while (offset < data.length) offset += (await this.handle.write(data, offset)).bytesWritten;
        await this.handle.datasync();
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        for (const waiter of waiters) waiter.reject(error);
      }
    }
    this.#flushing = false;
  }

  async close(): Promise<void> {
    while (this.#flushing) await new Promise((resolve) => setImmediate(resolve));
    if (this.#scheduled) this.#writeBatch();
    this.#closed = true;
    await this.handle.datasync().catch(() => undefined); // e.g. EINVAL on /dev/full
    await this.handle.close();
  }
}
