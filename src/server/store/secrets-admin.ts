// What the admin API may do with the secrets store: describe environments (names and counts,
// never values), and edit one environment's file. When the edits run: edit-turns.ts.
import { promises as fs } from 'node:fs';
import type { StateStore } from '../state/state-store.js';
import type { StorePaths } from './layout.js';
import { EditTurns } from './edit-turns.js';
import { editEnvironment, type SecretChange } from './secret-edit.js';
import { listEnvironments, type SopsSecretStore } from './sops-store.js';

export interface EnvironmentSummary {
  name: string;
  /** How many names it serves; null when the file fails verification. */
  secrets: number | null;
  digest: string | null;
  /** The file's modification time, ISO 8601. */
  changed_at: string | null;
  /** Why the file is not served (RWS_STORE_INVALID, …), or null. */
  error: string | null;
}

export class SecretsAdmin {
  readonly #turns = new EditTurns();

  constructor(
    private readonly paths: StorePaths,
    private readonly identities: string[],
    private readonly store: SopsSecretStore,
    private readonly state: Pick<StateStore, 'withLock'>,
  ) {}

  async environments(): Promise<EnvironmentSummary[]> {
    const summaries: EnvironmentSummary[] = [];
    for (const name of await listEnvironments(this.paths)) {
      const stat = await fs.lstat(this.paths.secrets(name)).catch(() => undefined);
      const changed_at = stat === undefined ? null : stat.mtime.toISOString();
      try {
        const file = await this.store.open(name);
        if (file !== undefined) summaries.push({ name, secrets: file.names.length, digest: file.digest, changed_at, error: null });
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        summaries.push({ name, secrets: null, digest: null, changed_at, error: typeof code === 'string' && code.startsWith('RWS_') ? 'RWS_STORE_INVALID' : 'RWS_INTERNAL' });
      }
    }
    return summaries;
  }

  /** The names of an environment, file order; undefined when there is no such environment. */
  async names(environment: string): Promise<readonly string[] | undefined> {
    return (await this.store.open(environment))?.names;
  }

  /** One edit under the environment's lock; `record` stores its audit row before the file is replaced. */
  edit(environment: string, change: SecretChange, record: () => Promise<void>): Promise<void> {
    return this.#turns.run(environment, async () => {
      try {
        await editEnvironment(this.state, { paths: this.paths, identities: this.identities, environment }, change, record);
      } finally {
        this.store.forget(environment);
      }
    });
  }
}
