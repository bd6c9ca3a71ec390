// The secrets store: one SOPS file per environment, opened (MAC verified, data key unwrapped)
// once per version of the file on disk. Values are decrypted per request and not kept. A file is
// re-checked at most every 250 ms by its inode, size and times, so edits by the admin commands
// or by `sops` itself are picked up within a second; a file that fails verification stays
// refused until it changes again. Only encrypted values are served (servedValues).
import { constants, promises as fs } from 'node:fs';
import { openSopsFile, type SopsFile } from '../../sops/index.js';
import type { StorePaths } from './layout.js';
import type { SecretFile, SecretSource } from './secret-source.js';
import { servedValues } from './served-values.js';

const RECHECK_MS = 250;

interface Cached {
  identity: string;
  checkedAt: number;
  file: Promise<SecretFile | undefined>;
}

export class SopsSecretStore implements SecretSource {
  readonly #cache = new Map<string, Cached>();

  constructor(
    private readonly paths: StorePaths,
    private readonly identities: string[],
    private readonly now: () => number = Date.now,
  ) {}

  async open(environment: string): Promise<SecretFile | undefined> {
    const now = this.now();
    const cached = this.#cache.get(environment);
    if (cached !== undefined && now - cached.checkedAt < RECHECK_MS) return cached.file;
    const file = this.paths.secrets(environment);
    const stat = await fs.lstat(file, { bigint: true }).catch(() => undefined);
    const identity = stat === undefined ? 'absent' : `${stat.ino}:${stat.size}:${stat.mtimeNs}:${stat.ctimeNs}`;
    if (cached !== undefined && cached.identity === identity) {
      cached.checkedAt = now;
      return cached.file;
    }
    const opened = stat === undefined ? Promise.resolve(undefined) : readSopsFile(file, this.identities).then(servedValues);
    opened.catch(() => undefined); // a refusal is cached too; each request awaits and reports it
    this.#cache.set(environment, { identity, checkedAt: now, file: opened });
    return opened;
  }
}

/** Opens a store file (never through a link) and verifies it. */
export async function readSopsFile(file: string, identities: string[]): Promise<SopsFile> {
  const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return await openSopsFile(await handle.readFile('utf8'), identities, { origin: file });
  } finally {
    await handle.close();
  }
}
