// What the HTTP layer needs from the secrets store: one environment's names, and one value
// decrypted on demand. `sops-store.ts` implements it over SOPS files.

export interface SecretFile {
  /** Top-level scalar names, file order; nested values are never served. */
  readonly names: readonly string[];
  decrypt(name: string): string;
}

/** The version of an environment this process serves: a digest of the file it loaded, or why it refuses it. */
export type EnvironmentVersion = { digest: string } | { error: string };

export interface SecretSource {
  /** The environment's file, verified; undefined when there is no such environment. */
  open(environment: string): Promise<SecretFile | undefined>;
  /** Every environment in the store, with the version this process serves. */
  versions(): Promise<Record<string, EnvironmentVersion>>;
  /** Calls `listener` whenever the environment's file may have changed (long-polls); returns the unsubscribe. */
  watch?(environment: string, listener: () => void): () => void;
}
