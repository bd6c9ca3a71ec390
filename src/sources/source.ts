// A source yields secrets as an ordered map of name → value. Local files implement it today;
// the vault client implements the same interface, so the runner never knows where secrets came from.

export type Secrets = Map<string, string>;

export interface LoadContext {
  /** Called with a warning that names no value (e.g. a group-readable .env file). */
  warn(code: string, message: string): void;
  /** Debug detail for --verbose; names only. */
  debug(message: string): void;
}

export interface SecretSource {
  /** Human label for messages, e.g. `.env file ./config/.env`. Never holds a secret. */
  readonly label: string;
  load(context: LoadContext): Promise<Secrets>;
}

/** Later sources override earlier ones, as `--env-file a --env-file b` promises. */
export async function loadAll(sources: readonly SecretSource[], context: LoadContext): Promise<Secrets> {
  const merged: Secrets = new Map();
  for (const source of sources) {
    const secrets = await source.load(context);
    for (const [name, value] of secrets) {
      if (merged.has(name)) context.debug(`${name} from ${source.label} overrides an earlier source`);
      merged.set(name, value);
    }
  }
  return merged;
}
