// The secrets store: one SOPS file per environment, opened (MAC verified, data key unwrapped)
// once per version of the file on disk. A value is decrypted on its first read and then kept only
// masked (served-values.ts). A file is
// re-checked at most every 250 ms by its inode, size and times, so edits by the admin commands
// or by `sops` itself are picked up within a second; a file that fails verification stays
// refused until it changes again. Only encrypted values are served (servedValues).
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { RwsError } from '../../errors.js';
import { openSopsFile, type SopsFile } from '../../sops/index.js';
import { isValidEnvironment, SECRETS_SUFFIX, type StorePaths } from './layout.js';
import type { EnvironmentVersion, SecretFile, SecretSource } from './secret-source.js';
import { servedValues } from './served-values.js';
import { fileIdentity, StoreWatcher } from './file-watch.js';
import { unreadableFile } from './owner.js';
import { RefusedFiles } from './refused-files.js';

export type VersionedSopsFile = SopsFile & { readonly digest: string };
/** What the API serves of one version of a file, and that version's digest. */
export type ServedFile = SecretFile & { readonly digest: string };

const RECHECK_MS = 250;
/** As the wrapper's --sops-file: the whole file is read and parsed in the server's one thread. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

interface Cached {
  identity: string;
  checkedAt: number;
  file: Promise<ServedFile | undefined>;
}

export class SopsSecretStore implements SecretSource {
  readonly #cache = new Map<string, Cached>();
  #watcher: StoreWatcher | undefined;
  readonly #told: RefusedFiles;

  constructor(
    private readonly paths: StorePaths,
    private readonly identities: string[],
    private readonly now: () => number = Date.now,
    /** Where a failure to watch the store directory, and a file refused, is told (once). */
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.#told = new RefusedFiles(log);
  }

  open(environment: string): Promise<ServedFile | undefined> {
    const cached = this.#cache.get(environment);
    // Every read comes here: a file checked within RECHECK_MS is its promise as it is, with no
    // async step of its own (returning a promise from one costs a read two more turns).
    if (cached !== undefined && this.now() - cached.checkedAt < RECHECK_MS) return cached.file;
    return this.#recheck(environment, cached);
  }

  async #recheck(environment: string, cached: Cached | undefined): Promise<ServedFile | undefined> {
    const now = this.now();
    const file = this.paths.secrets(environment);
    const identity = await fileIdentity(file);
    if (cached !== undefined && cached.identity === identity) {
      cached.checkedAt = now;
      return cached.file;
    }
    const opened = identity === 'absent' ? Promise.resolve(undefined) : readSopsFile(file, this.identities).then((sops) => ({ ...servedValues(sops), digest: sops.digest }));
    // A refusal is cached too, told in the log once here; each request awaits it and answers with it.
    opened.then(
      () => this.#told.served(file),
      (error: unknown) => this.#told.refused(file, error),
    );
    this.#cache.set(environment, { identity, checkedAt: now, file: opened });
    return opened;
  }

  /** Forgets what it holds of `environment`: this process's own edit is served at the next request. */
  forget(environment: string): void {
    this.#cache.delete(environment);
  }

  /** Long-polls hear of changes to the file; the cached version is dropped first, so they see the new one. */
  watch(environment: string, listener: () => void): () => void {
    this.#watcher ??= new StoreWatcher(this.paths, (changed) => this.forget(changed), this.log);
    const unsubscribe = this.#watcher.subscribe(environment, listener);
    // What the listener was served may be up to RECHECK_MS older than the file, changed before
    // anyone watched: then it hears of it now.
    const served = this.#cache.get(environment)?.identity;
    void fileIdentity(this.paths.secrets(environment)).then((identity) => {
      if (served === undefined || identity === served) return;
      this.forget(environment);
      listener();
    });
    return unsubscribe;
  }

  async versions(): Promise<Record<string, EnvironmentVersion>> {
    const versions: Record<string, EnvironmentVersion> = {};
    for (const environment of await listEnvironments(this.paths)) {
      try {
        const file = await this.open(environment);
        if (file) versions[environment] = { digest: file.digest };
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        versions[environment] = { error: typeof code === 'string' ? code : 'RWS_STORE_INVALID' };
      }
    }
    return versions;
  }
}

/** The environments a store holds: its *.enc.yaml files with a valid environment name, sorted. */
export async function listEnvironments(paths: StorePaths): Promise<string[]> {
  const names = await fs.readdir(paths.dir).catch(() => [] as string[]);
  return names
    .filter((name) => name.endsWith(SECRETS_SUFFIX))
    .map((name) => name.slice(0, -SECRETS_SUFFIX.length))
    .filter(isValidEnvironment)
    .sort();
}

/** The version id of a file's bytes, as `status` and /healthz show it. */
export function fileDigest(text: string): string {
  return `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;
}

/** Opens a store file (never through a link) and verifies it. */
export async function readSopsFile(file: string, identities: string[]): Promise<VersionedSopsFile> {
  // O_NONBLOCK: opening a FIFO put in a file's place must not wait for a writer (a request,
  // `status` and a thread of libuv's small pool would hang for ever); it is then refused below.
  const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(async (error: NodeJS.ErrnoException) => {
    // A link in a file's place is refused as the store's other misfits are (it came out as a 500
    // RWS_INTERNAL, and as "ELOOP" in status and /healthz).
    if (error.code === 'ELOOP') throw new RwsError('RWS_STORE_INVALID', `${file} is a symbolic link, which the server never follows`, { hint: 'put the file itself in the store (a copy, or a hard link on the same file system)' });
    if (error.code === 'EACCES' || error.code === 'EPERM') throw await unreadableFile(file, error);
    throw error;
  });
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new RwsError('RWS_STORE_INVALID', `${file} is not a regular file`, { hint: `remove it, or restore the file from version control` });
    if (stat.size > MAX_FILE_BYTES) throw new RwsError('RWS_STORE_INVALID', `${file} is over ${MAX_FILE_BYTES / 1024 / 1024} MiB`, { hint: 'restore the file from version control' });
    const text = await handle.readFile('utf8');
    const opened = await openSopsFile(text, identities, { origin: file });
    return Object.assign(opened, { digest: fileDigest(text) });
  } finally {
    await handle.close();
  }
}
