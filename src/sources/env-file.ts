// A developer's local dotenv file. Parsed by the `dotenv` package so it reads the way the
// developer's app reads it; a group/other-readable file only warns (they often are).
import { constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dotenvParse } from '../dotenv-parse.js';
import { SourceError } from '../errors.js';
import type { LoadContext, SecretSource, Secrets } from './source.js';

/** Refuse absurd inputs before parsing: a .env is small; 16 MiB leaves room for certificates. */
const MAX_BYTES = 16 * 1024 * 1024;

export class EnvFileSource implements SecretSource {
  readonly label: string;

  constructor(readonly path: string) {
    this.label = `.env file ${path}`;
  }

  async load(context: LoadContext): Promise<Secrets> {
    const text = await readSmallFile(this.path, context);
    const parsed = dotenvParse(text);
    // dotenv returns a plain object; copy own keys into a Map so no name can reach a prototype.
    const secrets: Secrets = new Map();
    for (const name of Object.keys(parsed)) secrets.set(name, parsed[name] as string);
    context.debug(`read ${secrets.size} entries from ${this.label}`);
    return secrets;
  }
}

async function readSmallFile(path: string, context: LoadContext): Promise<string> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    const info = await handle.stat();
    // A pipe is fine: `--env-file <(sops -d .env.enc)` is a common way to feed decrypted files.
    if (!info.isFile() && !info.isFIFO()) {
      throw new SourceError('RWS_SOURCE_UNREADABLE', `cannot read ${path}: not a regular file`, 'pass the path of a dotenv file');
    }
    if (info.isFile() && (info.mode & 0o077) !== 0) {
      context.warn('RWS_SOURCE_PERMISSIONS', `${path} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); consider chmod 600 ${path}`);
    }
    return decodeUtf8(await readBounded(handle, path), path);
  } finally {
    await handle.close();
  }
}

async function readBounded(handle: FileHandle, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) return Buffer.concat(chunks, total);
    total += bytesRead;
    if (total > MAX_BYTES) {
      throw new SourceError('RWS_SOURCE_INVALID', `cannot read ${path}: larger than 16 MiB`, 'is this really a dotenv file?');
    }
    chunks.push(chunk.subarray(0, bytesRead));
  }
}

function decodeUtf8(bytes: Buffer, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SourceError('RWS_SOURCE_INVALID', `cannot read ${path}: not valid UTF-8`, 'save the file as UTF-8');
  }
}

function unreadable(path: string, error: unknown): SourceError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? 'unknown error');
  return new SourceError('RWS_SOURCE_UNREADABLE', `cannot read ${path}: ${reason}`, 'check the path given to --env-file', error);
}
