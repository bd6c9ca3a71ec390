// The secrets file: a fresh private directory (0700) on RAM-backed storage when there is some,
// holding one file (0600) created exclusively without following links. Removed as a whole on
// every way out; leftovers of runs killed with SIGKILL are recognised by the pid in the
// directory name and removed at the next start (placement.ts).
import { chmodSync, closeSync, constants as fsConstants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdtempSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { chmod, open, rm, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { SecretsFileError } from '../errors.js';
import { dirPrefix } from './placement.js';

export type { Placement } from './placement.js';

/** One secrets file and its directory. `dispose` is idempotent and safe from any exit path. */
export class SecretsFile {
  /** Released by the cleanup: nothing more is made, whatever was on its way. */
  private disposed = false;
  /** Gone from disk (disposed, or detached for fd injection): nothing left to remove. */
  private removed = false;
  private readHandle: FileHandle | undefined;
  /** --watch with fd injection and a reload signal: the way to new content for the same inode. */
  private writeHandle: FileHandle | undefined;
  private owner: { uid: number; gid: number } | undefined;

  private constructor(
    readonly dir: string,
    readonly path: string,
  ) {}

  /**
   * Creates the directory and writes `content` into a new file, all synchronously: a signal's
   * handler, and so the cleanup, runs only between two turns of the event loop, so never while the
   * directory exists unregistered or half made (with an awaited mkdtemp, a stop signal could
   * clean up before the directory was registered, and the wrapper die leaving it). Once the run
   * has been cleaned up (a signal while the run was on its way here), `register` releases the
   * directory at once and nothing more is made.
   */
  static create(base: string, fileName: string, content: string, register: (file: SecretsFile) => void): SecretsFile {
    let dir: string;
    try {
      dir = mkdtempSync(join(base, dirPrefix()));
    } catch (error) {
      throw new SecretsFileError(`cannot create a private directory in ${base}: ${reason(error)}`, 'check that the directory exists and is writable, or set XDG_RUNTIME_DIR to a private tmpfs directory', error);
    }
    const file = new SecretsFile(dir, join(dir, fileName));
    register(file);
    if (file.disposed) throw new SecretsFileError('the run was stopped before its secrets file was made');
    try {
      // mkdtemp asks for 0700, but the umask may take bits away (umask 0277 leaves 0500, where not
      // even we may create the file): make the mode exact, as for the file.
      chmodSync(dir, 0o700);
    } catch (error) {
      throw new SecretsFileError(`cannot make ${dir} private: ${reason(error)}`, 'check the temporary directory', error);
    }
    file.write(content);
    return file;
  }

  private write(content: string, path = this.path): void {
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
    let fd: number | undefined;
    try {
      // Ours alone: 0700, or 0711 once handed to a --user child (it may pass through to its file,
      // never list, create or rename in it), and owned by this process's user.
      const dirInfo = lstatSync(this.dir);
      const allowed = this.owner ? 0o711 : 0o700;
      if (!dirInfo.isDirectory() || (dirInfo.mode & 0o777) !== allowed || dirInfo.uid !== process.getuid?.()) throw new Error('directory is not private');
      fd = openSync(path, flags, 0o600);
      // The umask may only remove bits from 0600, never add them, but make the mode exact anyway.
      fchmodSync(fd, 0o600);
      // On the descriptor, never by path: nothing can be swapped in between.
      if (this.owner) fchownSync(fd, this.owner.uid, this.owner.gid);
      writeFileSync(fd, content, 'utf8');
      const info = fstatSync(fd);
      if ((info.mode & 0o777) !== 0o600 || !info.isFile()) throw new Error('unexpected file mode');
    } catch (error) {
      throw new SecretsFileError(`cannot create the secrets file in ${this.dir}: ${reason(error)}`, 'check the temporary directory', error);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /**
   * For --inject-as fd: reopen read-only, then remove file and directory. Nothing is left on any
   * filesystem; the returned descriptor keeps the data alive for the child.
   */
  async detach(keepWriter = false): Promise<number> {
    try {
      this.readHandle = await open(this.path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      if (keepWriter) this.writeHandle = await open(this.path, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW);
      await unlink(this.path);
      await rmdir(this.dir);
      this.removed = true;
    } catch (error) {
      throw new SecretsFileError('cannot hand the secrets file over as a descriptor', 'use --inject-as file instead', error);
    }
    return this.readHandle.fd;
  }

  /**
   * --user: the file becomes the child user's (0600), changed on its descriptor. The directory
   * stays ours, 0711: the child reaches its file by path but can create, rename or link nothing
   * in it, so a root wrapper that later rewrites or removes the file by path (--watch, cleanup)
   * never acts on something the child put there.
   */
  async handTo(uid: number, gid: number): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      await handle.chown(uid, gid);
      await chmod(this.dir, 0o711);
      this.owner = { uid, gid };
    } catch (error) {
      throw new SecretsFileError(`cannot hand the secrets file in ${this.dir} to uid ${uid}`, 'check that run-with-secrets runs as root', error);
    } finally {
      await handle?.close();
    }
  }

  /**
   * New content for a child that stays (--watch --on-change signal:SIG). By path: a new file made
   * as the first one was (exclusive, 0600, no links followed) and renamed over it, so a reader
   * sees the old file or the new one, never half of one. Detached (fd): the same inode rewritten
   * through the descriptor kept for it, since the child's fd 3 cannot be swapped; it rereads
   * /dev/fd/3 (a fresh open, from offset 0) when signalled.
   */
  async rewrite(content: string): Promise<void> {
    if (this.disposed) throw new SecretsFileError('the secrets file is already removed');
    try {
      if (this.writeHandle) {
        const data = Buffer.from(content, 'utf8');
        await this.writeHandle.write(data, 0, data.length, 0);
        await this.writeHandle.truncate(data.length);
        return;
      }
      if (this.readHandle) throw new Error('a detached file can only be rewritten through a kept descriptor');
    } catch (error) {
      throw new SecretsFileError(`cannot rewrite the secrets file: ${reason(error)}`, 'check the runtime directory', error);
    }
    // Loaded here: node:crypto is not otherwise needed by a plain run.
    const { randomBytes } = await import('node:crypto');
    const next = join(this.dir, `.${basename(this.path)}.${randomBytes(6).toString('hex')}`);
    // Synchronous, as the first file was made: no cleanup runs between the write and the rename.
    try {
      this.write(content, next);
      renameSync(next, this.path);
    } catch (error) {
      try {
        rmSync(next, { force: true });
      } catch {
        // The directory goes as a whole at the end anyway.
      }
      throw error instanceof SecretsFileError ? error : new SecretsFileError(`cannot replace the secrets file in ${this.dir}: ${reason(error)}`, 'check the runtime directory', error);
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    if (!this.removed) {
      await rm(this.dir, { recursive: true, force: true });
      this.removed = true;
    }
    const handles = [this.readHandle, this.writeHandle];
    this.readHandle = this.writeHandle = undefined;
    for (const handle of handles) await handle?.close().catch(() => undefined);
  }

  /** From a synchronous exit path (process 'exit' event), and when `dispose` failed to remove it. */
  disposeSync(): void {
    this.disposed = true;
    if (!this.removed) {
      rmSync(this.dir, { recursive: true, force: true });
      this.removed = true;
    }
  }
}

/** Why, in words that hold no content: an errno code (ENOSPC, EACCES), or our own check's finding. */
function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return code;
  return error instanceof Error ? error.message : 'unknown error';
}
