// An append-only file of JSON lines with group commit: lines appended while a write is in flight
// go out together in the next write (and fsync), so durability costs one sync per batch, not one
// per request. `append` resolves only once its line is on disk.
import { constants, promises as fs } from 'node:fs';

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class AppendLog {
  #lines: string[] = [];
  #waiters: Waiter[] = [];
  #flushing = false;

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
      this.#lines.push(`${line}\n`);
      this.#waiters.push({ resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    while (this.#lines.length > 0) {
      const data = Buffer.from(this.#lines.join(''), 'utf8');
      const waiters = this.#waiters;
      this.#lines = [];
      this.#waiters = [];
      try {
        let offset = 0;
        while (offset < data.length) offset += (await this.handle.write(data, offset)).bytesWritten;
        if (this.sync) await this.handle.datasync();
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        for (const waiter of waiters) waiter.reject(error);
      }
    }
    this.#flushing = false;
  }

  async close(): Promise<void> {
    while (this.#flushing) await new Promise((resolve) => setImmediate(resolve));
    await this.handle.datasync().catch(() => undefined); // e.g. EINVAL on /dev/full
    await this.handle.close();
  }
}
