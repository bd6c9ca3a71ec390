// A source yields secrets as an ordered map of name → value. Local files implement it today;
// the vault client implements the same interface, so the runner never knows where secrets came from.
import { SourceError } from '../errors.js';
import { ReadProblem } from '../local-file.js';

export type Secrets = Map<string, string>;

export interface LoadContext {
  /** Called with a warning that names no value (e.g. a group-readable .env file). */
  warn(code: string, message: string): void;
  /** Debug detail for --verbose; names only. */
  debug(message: string): void;
  /** Aborted when a stop signal arrives: a source stops asking and revokes what it minted. */
  stopped?: AbortSignal;
  /**
   * Work a stopped run must still wait for before it exits (a token's revoke). Only that: a
   * source blocked on a FIFO nobody writes must not hold the run.
   */
  mustFinish?(work: Promise<unknown>): void;
}

export interface SecretSource {
  /** Human label for messages, e.g. `.env file ./config/.env`. Never holds a secret. */
  readonly label: string;
  /** Asks the vault, with a credential it can refuse (what --watch's --on-revoke is about). */
  readonly fromVault?: boolean;
  load(context: LoadContext): Promise<Secrets>;
  /** Names only, for --dry-run: a source that can list without reading values says so here. */
  loadNames?(context: LoadContext): Promise<string[]>;
}

/** For --dry-run: names from every source (values, where a source must read them, are dropped). */
export async function loadAllNames(sources: readonly SecretSource[], context: LoadContext): Promise<Secrets> {
  const names: Secrets = new Map();
  for (const source of sources) {
    const found = source.loadNames ? await source.loadNames(context) : [...(await source.load(context)).keys()];
    for (const name of found) names.set(name, '');
  }
  return names;
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

/** A local source file that could not be read, as the error users see. */
export function sourceError(path: string, error: unknown, hint: string): unknown {
  if (!(error instanceof ReadProblem)) return error;
  const code = error.kind === 'unreadable' ? 'RWS_SOURCE_UNREADABLE' : 'RWS_SOURCE_INVALID';
  return new SourceError(code, `cannot read ${path}: ${error.reason}`, error.hint ?? hint, error.cause);
}
