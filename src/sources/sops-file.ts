// A local SOPS file (YAML, age), read natively: the MAC is verified over the whole file before
// anything is used; top-level scalars become secrets, nested maps and lists are skipped.
import { readFile } from 'node:fs/promises';
import { SourceError } from '../errors.js';
import type { LoadContext, SecretSource, Secrets } from './source.js';

/** Where the age identity comes from, as in sops. */
export interface AgeIdentityEnv {
  SOPS_AGE_KEY?: string | undefined;
  SOPS_AGE_KEY_FILE?: string | undefined;
}

const MAX_BYTES = 16 * 1024 * 1024;

export class SopsFileSource implements SecretSource {
  readonly label: string;

  constructor(
    readonly path: string,
    private readonly identityEnv: AgeIdentityEnv,
  ) {
    this.label = `SOPS file ${path}`;
  }

  async load(context: LoadContext): Promise<Secrets> {
    const text = await this.read();
    // The SOPS module (yaml, age, AES) is loaded only by runs that use a SOPS file.
    const { loadAgeIdentities, openSopsFile } = await import('../sops/index.js');
    const identities = await loadAgeIdentities(this.identityEnv);
    if (identities.length === 0) {
      throw new SourceError('RWS_SOURCE_UNREADABLE', `no age identity to open ${this.path}`, 'set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) to your age key');
    }
    const file = await openSopsFile(text, identities, { origin: this.path });
    if (file.skipped.length > 0) context.debug(`${this.label}: skipped nested or empty entries ${file.skipped.join(', ')}`);
    const secrets: Secrets = file.decryptAll();
    context.debug(`read ${secrets.size} entries from ${this.label}`);
    return secrets;
  }

  private async read(): Promise<string> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (code ?? 'unknown error');
      throw new SourceError('RWS_SOURCE_UNREADABLE', `cannot read ${this.path}: ${reason}`, 'check the path given to --sops-file', error);
    }
    if (bytes.length > MAX_BYTES) throw new SourceError('RWS_SOURCE_INVALID', `cannot read ${this.path}: larger than 16 MiB`);
    return bytes.toString('utf8');
  }
}
