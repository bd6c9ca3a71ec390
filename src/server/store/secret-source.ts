// What the HTTP layer needs from the secrets store: one environment's names, and one value
// decrypted on demand. `store.ts` implements it over SOPS files.

export interface SecretFile {
  /** Top-level scalar names, file order; nested values are never served. */
  readonly names: readonly string[];
  decrypt(name: string): string;
}

export interface SecretSource {
  /** The environment's file, verified; undefined when there is no such environment. */
  open(environment: string): Promise<SecretFile | undefined>;
}
