// A local SOPS file (YAML, age), read natively: the MAC is verified over the whole file before
// anything is used; top-level encrypted scalars become secrets; nested maps and lists, and plaintext or empty values, are skipped.
import { access } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { SourceError } from '../errors.js';
import { readLocalFile } from '../local-file.js';
import { sourceError, type LoadContext, type SecretSource, type Secrets } from './source.js';

/** Where the age identity comes from, as in sops. */
export interface AgeIdentityEnv {
  SOPS_AGE_KEY?: string | undefined;
  SOPS_AGE_KEY_FILE?: string | undefined;
  XDG_CONFIG_HOME?: string | undefined;
  HOME?: string | undefined;
}

/**
 * sops's own default when neither variable is set: keys.txt under the user config directory
 * (Go's os.UserConfigDir: an absolute $XDG_CONFIG_HOME, else ~/.config).
 */
export function defaultAgeKeyFile(env: AgeIdentityEnv): string | undefined {
  if (env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME)) return join(env.XDG_CONFIG_HOME, 'sops/age/keys.txt');
  return env.HOME ? join(env.HOME, '.config/sops/age/keys.txt') : undefined;
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
    const { loadAgeIdentities, openSopsFile, SopsError } = await import('../sops/index.js');
    const identities = await loadAgeIdentities(await this.identitySettings(context));
    let file: Awaited<ReturnType<typeof openSopsFile>>;
    try {
      // Opened even with no identity: the file is parsed first, so a file that is not SOPS at all
      // (a .env given to --sops-file) is named as such rather than sending the user after a key.
      file = await openSopsFile(text, identities, { origin: this.path });
    } catch (error) {
      if (identities.length === 0 && error instanceof SopsError && error.code === 'RWS_SOPS_NO_IDENTITY') {
        const fallback = defaultAgeKeyFile(this.identityEnv);
        throw new SourceError('RWS_SOURCE_UNREADABLE', `no age identity to open ${this.path}`, `set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY) to your age key${fallback ? `, or put it in ${fallback} as sops does` : ''}`);
      }
      if (error instanceof SopsError && error.code === 'RWS_SOPS_INVALID' && error.hint === undefined) {
        throw new SopsError('RWS_SOPS_INVALID', error.message, { hint: `check it with sops -d ${this.path}; a dotenv file goes to --env-file`, cause: error });
      }
      throw error;
    }
    if (file.skipped.length > 0) context.debug(`${this.label}: skipped nested or empty entries ${file.skipped.join(', ')}`);
    // Only encrypted values: a plaintext or empty one is not protected by the MAC (anyone who can
    // write the file can add it without key material), so it is never injected.
    if (file.unprotected.length > 0) context.debug(`${this.label}: skipped values that are not encrypted (plain text or empty, not protected by the MAC): ${file.unprotected.join(', ')}`);
    const unprotected = new Set(file.unprotected);
    const secrets: Secrets = new Map([...file.decryptAll()].filter(([name]) => !unprotected.has(name)));
    context.debug(`read ${secrets.size} entries from ${this.label}`);
    return secrets;
  }

  private async identitySettings(context: LoadContext): Promise<{ SOPS_AGE_KEY?: string; SOPS_AGE_KEY_FILE?: string }> {
    const { SOPS_AGE_KEY, SOPS_AGE_KEY_FILE } = this.identityEnv;
    if (SOPS_AGE_KEY || SOPS_AGE_KEY_FILE) return { ...(SOPS_AGE_KEY ? { SOPS_AGE_KEY } : {}), ...(SOPS_AGE_KEY_FILE ? { SOPS_AGE_KEY_FILE } : {}) };
    const fallback = defaultAgeKeyFile(this.identityEnv);
    if (fallback === undefined) return {};
    try {
      await access(fallback);
    } catch {
      return {};
    }
    context.debug(`age identity from ${fallback} (neither SOPS_AGE_KEY_FILE nor SOPS_AGE_KEY is set)`);
    return { SOPS_AGE_KEY_FILE: fallback };
  }
}
