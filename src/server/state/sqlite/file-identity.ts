// Is the SQLite file a process has open still the one at its path? SQLite keeps using the file
// it opened: after `rm state.db` or `mv backup.db state.db` a server went on answering from, and
// writing to, a file no other process could see (while admin commands made or used a new one),
// and after `: > state.db` it answered from its WAL and caches. The path is compared with what
// was opened (device and inode), and the file's first page with what SQLite always writes there.
//
// The first page is read through one descriptor per file and process, opened with the first
// driver and closed only with the last: POSIX locks belong to a process and a file, and closing
// any descriptor of the file drops every lock the process holds on it. A check that opened and
// closed the file once a second dropped the SHARED lock SQLite holds on the database in WAL mode
// (SQLite's "How To Corrupt" §2.2): another process could then take the database's EXCLUSIVE lock
// while this one still had it open, which is how SQLite tells it is the last one there.
import { constants, promises as fs, type Stats } from 'node:fs';

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The first 16 bytes of every SQLite 3 database file (https://sqlite.org/fileformat.html#magic_header_string). */
const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

interface Probe {
  /** Shared from the first open on, so that two drivers opening at once never make two. */
  handle: Promise<fs.FileHandle>;
  users: number;
}

/** By device and inode: the file, not its path, is what its locks belong to. */
const probes = new Map<string, Probe>();

const keyOf = (identity: FileIdentity): string => `${identity.dev}:${identity.ino}`;

/** A read-only descriptor of the file `identity` names, shared by its drivers in this process. */
export class FileProbe {
  #closed = false;

  private constructor(
    private readonly key: string,
    private readonly probe: Probe,
  ) {}

  /** Opens `file` once per process (or shares the descriptor already open), before SQLite opens it. */
  static async open(file: string, identity: FileIdentity): Promise<FileProbe> {
    const key = keyOf(identity);
    let probe = probes.get(key);
    if (probe === undefined) {
      probe = { handle: fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW), users: 0 };
      probes.set(key, probe);
    }
    probe.users++;
    const opened = new FileProbe(key, probe);
    try {
      await probe.handle;
    } catch (error) {
      await opened.close();
      throw error;
    }
    return opened;
  }

  /** The first 16 bytes of the file, read through the shared descriptor. */
  async header(): Promise<Buffer> {
    const header = Buffer.alloc(MAGIC.length);
    await (await this.probe.handle).read(header, 0, MAGIC.length, 0);
    return header;
  }

  /** Call once every SQLite connection of this driver is closed: the last one closes the descriptor. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (--this.probe.users > 0) return;
    if (probes.get(this.key) === this.probe) probes.delete(this.key);
    const handle = await this.probe.handle.catch(() => undefined);
    await handle?.close();
  }
}

/**
 * How the file at `file` differs from the one opened (`identity`, with pages of `pageSize`
 * bytes): 'deleted', 'replaced' or 'truncated or overwritten'; undefined when it is the same
 * file, or when it cannot be told (EMFILE under load, say, is no evidence of anything). Never
 * opens the file (see the top).
 */
export async function describeChange(file: string, identity: FileIdentity, pageSize: number, probe: FileProbe): Promise<string | undefined> {
  let stat: Stats;
  try {
    stat = await fs.lstat(file);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'deleted' : undefined;
  }
  // A symbolic link now stands where the file was: not the file that was opened.
  if (!stat.isFile() || stat.dev !== identity.dev || stat.ino !== identity.ino) return 'replaced';
  // SQLite writes whole pages, and page 1 (with the header) exists from the first write in WAL
  // mode on: a shorter file, a torn page or another header was cut or written by something else.
  if (stat.size < pageSize || stat.size % pageSize !== 0) return 'truncated or overwritten';
  try {
    return (await probe.header()).equals(MAGIC) ? undefined : 'truncated or overwritten';
  } catch {
    return undefined;
  }
}
