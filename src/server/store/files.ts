// File primitives for the store: created exclusively without following links (mode 0600),
// replaced atomically through a temp file in the same directory, and serialised by lock files.
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RwsError } from '../../errors.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY } = constants;

/** Creates `file` with `data`, failing if anything (even a dangling link) is already there. */
export async function createExclusive(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(file, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `file` by a complete new version: temp file (0600) in the same directory, fsync, rename. */
export async function replaceFile(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await createExclusive(temp, data);
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a file the store owns; refuses links and files others can read or write. */
export async function readPrivateFile(file: string): Promise<string> {
  const handle = await fs.open(file, constants.O_RDONLY | O_NOFOLLOW);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new RwsError('RWS_STORE_INVALID', `${file} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      throw new RwsError('RWS_STORE_INVALID', `${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)})`, {
        hint: `chmod 600 ${file}`,
      });
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * Runs `fn` while holding `<file>.lock`, so that two admin commands never lose each other's
 * read-modify-write.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const release = await acquireLock(file, timeoutMs);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Takes `<file>.lock` (holding our pid); a lock left by a process that is gone is taken over. */
export async function acquireLock(file: string, timeoutMs: number, holder = 'another command'): Promise<() => Promise<void>> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await createExclusive(lock, String(process.pid));
      return () => fs.rm(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (await lockIsStale(lock)) {
        await fs.rm(lock, { force: true });
        continue;
      }
      if (Date.now() >= deadline) {
        throw new RwsError('RWS_STORE_LOCKED', `${lock} is held by ${holder}`, { hint: `wait for it to finish, or remove ${lock} if no such process is running` });
      }
      await sleep(25);
    }
  }
}

async function lockIsStale(lock: string): Promise<boolean> {
  const pid = Number(await fs.readFile(lock, 'utf8').catch(() => ''));
  if (!Number.isSafeInteger(pid) || pid <= 0) return false; // being written right now
  if (pid === process.pid) return true; // a previous life of this pid (containers restart as pid 1)
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
