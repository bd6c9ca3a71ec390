// A local SOPS file (YAML, age), read natively: the MAC is verified over the whole file before
// anything is used; top-level encrypted scalars become secrets; nested maps and lists, and plaintext or empty values, are skipped.
import { SourceError } from '../errors.js';
import { readLocalFile } from '../local-file.js';
import { sourceError, type LoadContext, type SecretSource, type Secrets } from './source.js';

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
    let text: string;
    try {
      text = (await readLocalFile(this.path, { maxBytes: MAX_BYTES, allowPipe: true })).text;
    } catch (error) {
      throw sourceError(this.path, error, 'check the path given to --sops-file');
    }
    // The SOPS module (yaml, age, AES) is loaded only by runs that use a SOPS file.
    const { loadAgeIdentities, openSopsFile } = await import('../sops/index.js');
    const identities = await loadAgeIdentities(this.identityEnv);
    if (identities.length === 0) {
      throw new SourceError('RWS_SOURCE_UNREADABLE', `no age identity to open ${this.path}`, 'set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) to your age key');
    }
    const file = await openSopsFile(text, identities, { origin: this.path });
    if (file.skipped.length > 0) context.debug(`${this.label}: skipped nested or empty entries ${file.skipped.join(', ')}`);
    // Only encrypted values: a plaintext or empty one is not protected by the MAC (anyone who can
    // write the file can add it without key material), so it is never injected.
    if (file.unprotected.length > 0) context.debug(`${this.label}: skipped values that are not encrypted (plain text or empty, not protected by the MAC): ${file.unprotected.join(', ')}`);
    const unprotected = new Set(file.unprotected);
    const secrets: Secrets = new Map([...file.decryptAll()].filter(([name]) => !unprotected.has(name)));
    context.debug(`read ${secrets.size} entries from ${this.label}`);
    return secrets;
  }

}
