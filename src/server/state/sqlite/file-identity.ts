// Is the SQLite file a process has open still the one at its path? SQLite keeps using the file
// it opened: after `rm state.db` or `mv backup.db state.db` a server went on answering from, and
// writing to, a file no other process could see (while admin commands made or used a new one),
// and after `: > state.db` it answered from its WAL and caches. The path is compared with what
// was opened (device and inode), and the file's first page with what SQLite always writes there.
import { constants, promises as fs } from 'node:fs';

export interface FileIdentity {
  dev: number;
  ino: number;
}

/** The first 16 bytes of every SQLite 3 database file (https://sqlite.org/fileformat.html#magic_header_string). */
const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/**
 * How the file at `file` differs from the one opened (`identity`, with pages of `pageSize`
 * bytes): 'deleted', 'replaced' or 'truncated or overwritten'; undefined when it is the same
 * file, or when it cannot be told (EMFILE under load, say, is no evidence of anything).
 */
export async function describeChange(file: string, identity: FileIdentity, pageSize: number): Promise<string | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'deleted';
    // A symbolic link now stands where the file was (O_NOFOLLOW): not the file that was opened.
    if (code === 'ELOOP') return 'replaced';
    return undefined;
  }
  try {
    const stat = await handle.stat();
    if (stat.dev !== identity.dev || stat.ino !== identity.ino) return 'replaced';
    // SQLite writes whole pages, and page 1 (with the header) exists from the first write in WAL
    // mode on: a shorter file, a torn page or another header was cut or written by something else.
    if (stat.size < pageSize || stat.size % pageSize !== 0) return 'truncated or overwritten';
    const header = Buffer.alloc(MAGIC.length);
    await handle.read(header, 0, MAGIC.length, 0);
    return header.equals(MAGIC) ? undefined : 'truncated or overwritten';
  } finally {
    await handle.close();
  }
}
