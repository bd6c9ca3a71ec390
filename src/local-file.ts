// Reading a small local file the user pointed us at (.env, SOPS file, config, credential,
// RWS_X_FILE): bounded while reading (a pipe has no size to check first), UTF-8 checked, and the
// mode returned so each caller can apply its own rule. Callers turn a ReadProblem into their own
// error class; nothing here ever quotes the file's content.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

export interface ReadOptions {
  maxBytes: number;
  /** Pipes are fine for data (`--env-file <(sops -d f)`), not for credentials. */
  allowPipe: boolean;
}

export interface LocalFile {
  text: string;
  /** st_mode of a regular file; undefined for a pipe. */
  mode: number | undefined;
}

export class ReadProblem extends Error {
  /** What to do when it is the content that is wrong, not the path ("check the path" would mislead). */
  readonly hint: string | undefined;

  constructor(
    /** Says what went wrong, to follow "cannot read PATH: ". */
    readonly reason: string,
    readonly kind: 'unreadable' | 'invalid',
    options?: { cause?: unknown; hint?: string },
  ) {
    super(reason, options?.cause === undefined ? undefined : { cause: options.cause });
    this.hint = options?.hint;
  }
}

export async function readLocalFile(path: string, options: ReadOptions): Promise<LocalFile> {
  // A regular file is read synchronously: every local run reads one, and node:fs/promises (with
  // the thread pool it starts) costs a cron run ≈2 ms more (bench/startup). A named pipe is told
  // apart before anything opens it (opening it, even without blocking, and closing it again would
  // discard what its writer already wrote) and read asynchronously as before, so that a stop
  // signal is still heard while its writer takes its time.
  let pipe = false;
  try {
    pipe = statSync(path).isFIFO();
  } catch {
    // Named in the error of the open below.
  }
  if (pipe) {
    if (!options.allowPipe) throw new ReadProblem('not a regular file', 'unreadable');
    return { text: decodeUtf8(await readPipe(path, options.maxBytes)), mode: undefined };
  }
  let fd: number;
  try {
    // O_NONBLOCK: a pipe swapped in since the check above must not hang the open; it is refused below.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (error) {
    throw new ReadProblem(describeErrno((error as NodeJS.ErrnoException).code), 'unreadable', { cause: error });
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new ReadProblem('not a regular file', 'unreadable');
    return { text: decodeUtf8(await readBounded((chunk) => readSync(fd, chunk, 0, chunk.length, null), options.maxBytes)), mode: info.mode };
  } finally {
    closeSync(fd);
  }
}

/** Reads chunks through `read` (bytes read into the buffer; 0 at the end) up to `maxBytes`. */
async function readBounded(read: (chunk: Buffer) => number | Promise<number>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const bytesRead = await read(chunk);
    if (bytesRead === 0) return Buffer.concat(chunks, total);
    total += bytesRead;
    if (total > maxBytes) throw new ReadProblem(`larger than ${formatSize(maxBytes)}`, 'invalid', { hint: 'check that this is the file you meant (a file of secrets is far smaller)' });
    chunks.push(chunk.subarray(0, bytesRead));
  }
}

/** A named pipe (`--env-file <(sops -d f)`): opened blocking, off the main thread. */
async function readPipe(path: string, maxBytes: number): Promise<Buffer> {
  const { open } = await import('node:fs/promises');
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    throw new ReadProblem(describeErrno((error as NodeJS.ErrnoException).code), 'unreadable', { cause: error });
  }
  try {
    if (!(await handle.stat()).isFIFO()) throw new ReadProblem('not a regular file', 'unreadable');
    return await readBounded(async (chunk) => (await handle.read(chunk, 0, chunk.length, null)).bytesRead, maxBytes);
  } finally {
    await handle.close();
  }
}

function decodeUtf8(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ReadProblem('not valid UTF-8', 'invalid', { hint: 'save it as UTF-8 (iconv -t UTF-8); give a binary secret in base64' });
  }
}

function describeErrno(code: string | undefined): string {
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? 'unknown error';
}

function formatSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
}

/** True when group or others may read or write a regular file. */
export function isExposed(mode: number | undefined): boolean {
  return mode !== undefined && (mode & 0o077) !== 0;
}

export function modeText(mode: number | undefined): string {
  return mode === undefined ? 'pipe' : (mode & 0o777).toString(8);
}
