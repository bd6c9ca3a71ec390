// Notices changes to local --env-file / --sops-file sources. The directory is watched, not the
// file: editors (vim, VS Code) and `secrets-server secret set` write a new file and rename it over
// the old one, which ends a watch on the old inode; an in-place write shows up as a change of the
// same name. inotify can miss events (a directory replaced, a network filesystem), so the files'
// identity (inode, size, modification and change times) is also compared every --watch-interval.
// Only a hint comes out of here: whether the injected values changed is decided after the debounce.
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { UsageError } from '../errors.js';

export interface FileFeedOptions {
  intervalMs: number;
  changed(reason: string): void;
  debug(message: string): void;
}

export class FileFeed {
  private readonly watchers: FSWatcher[] = [];
  private readonly identities = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly files: string[];

  constructor(
    paths: readonly string[],
    private readonly options: FileFeedOptions,
  ) {
    this.files = [...new Set(paths.map((path) => resolve(path)))];
  }

  /** Refuses what cannot be watched (a pipe such as `<(sops -d ...)` is read once and gone). */
  async start(): Promise<void> {
    for (const file of this.files) {
      const info = await stat(file).catch(() => undefined);
      if (info && !info.isFile()) throw new UsageError(`--watch cannot watch ${file}: it is not a regular file (a pipe is read once)`, 'give --env-file / --sops-file a file, or drop --watch');
      this.identities.set(file, identity(info));
    }
    const byDirectory = new Map<string, Set<string>>();
    for (const file of this.files) {
      const names = byDirectory.get(dirname(file)) ?? new Set<string>();
      names.add(basename(file));
      byDirectory.set(dirname(file), names);
    }
    for (const [directory, names] of byDirectory) this.watchDirectory(directory, names);
    this.timer = setInterval(() => void this.compareIdentities(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    for (const watcher of this.watchers.splice(0)) watcher.close();
    clearInterval(this.timer);
  }

  private watchDirectory(directory: string, names: ReadonlySet<string>): void {
    let watcher: FSWatcher;
    try {
      watcher = watch(directory, { persistent: false });
    } catch (error) {
      this.options.debug(`cannot watch ${directory} (${(error as NodeJS.ErrnoException).code ?? 'error'}); comparing the files every ${this.options.intervalMs / 1000}s instead`);
      return;
    }
    watcher.on('change', (_event, name) => {
      // No name: the kernel dropped it (queue overflow); any of our files may have changed.
      const file = name === null ? undefined : String(name);
      if (file === undefined || names.has(file)) this.options.changed(file === undefined ? `a change in ${directory}` : resolve(directory, file));
    });
    watcher.on('error', (error) => {
      this.options.debug(`watching ${directory} stopped (${(error as NodeJS.ErrnoException).code ?? 'error'}); comparing the files every ${this.options.intervalMs / 1000}s instead`);
      watcher.close();
    });
    this.watchers.push(watcher);
  }

  private async compareIdentities(): Promise<void> {
    for (const file of this.files) {
      const now = identity(await stat(file).catch(() => undefined));
      if (now === this.identities.get(file)) continue;
      this.identities.set(file, now);
      this.options.changed(file);
    }
  }
}

function identity(info: { ino: number; size: number; mtimeMs: number; ctimeMs: number } | undefined): string {
  return info === undefined ? 'missing' : `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}
