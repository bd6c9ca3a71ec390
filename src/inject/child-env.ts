// The child's environment is built up from nothing: a small allowlist of the parent's variables,
// what the user keeps with --keep-env, then the secrets. Our own RWS_* never pass.
import { globMatch } from '../glob.js';

/**
 * Inherited by default. Modelled on sudo's env_reset (shared/SECURITY.md): enough for a program to
 * find binaries, its home, locale, time zone and terminal; nothing that carries credentials.
 */
export const DEFAULT_INHERITED: readonly string[] = [
  'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'COLORTERM', 'LANG', 'LANGUAGE', 'LC_*', 'TZ',
  'NO_COLOR', 'COLUMNS', 'LINES', 'XDG_RUNTIME_DIR', 'TMPDIR',
];

export interface ChildEnvOptions {
  parent: Readonly<Record<string, string | undefined>>;
  /** --keep-env names or globs. */
  keep: readonly string[];
  /** --pristine: inherit only PATH (plus what --keep-env names). */
  pristine: boolean;
  /** Variables set by the wrapper: the secrets in env mode, the file variable in file mode. */
  injected: ReadonlyMap<string, string>;
}

export interface ChildEnv {
  env: Record<string, string>;
  /** Names of kept parent variables that an injected variable replaced (for --verbose). */
  shadowed: string[];
}

export function buildChildEnv(options: ChildEnvOptions): ChildEnv {
  const inherit = options.pristine ? ['PATH'] : DEFAULT_INHERITED;
  const patterns = [...inherit, ...options.keep];
  // Object.create(null): a secret named __proto__ must become a variable, not a prototype.
  const env: Record<string, string> = Object.create(null);
  for (const name of Object.keys(options.parent)) {
    const value = options.parent[name];
    if (value === undefined || isOwnVariable(name)) continue;
    if (patterns.some((pattern) => globMatch(pattern, name))) env[name] = value;
  }
  const shadowed: string[] = [];
  for (const [name, value] of options.injected) {
    if (name in env) shadowed.push(name);
    env[name] = value;
  }
  return { env, shadowed };
}

/** The wrapper's configuration and credentials: never inherited, whatever --keep-env says. */
export function isOwnVariable(name: string): boolean {
  return name.toUpperCase().startsWith('RWS_');
}

/**
 * The parent's variables, other than RWS_*, that hold `credential` (the API key or token the
 * wrapper uses): the variable a config file takes it from (`api_key: ${VAULT_KEY}`), or a copy.
 * They are the wrapper's credentials too, and never inherited, whatever --keep-env says.
 */
export function credentialHolders(parent: Readonly<Record<string, string | undefined>>, credential: string): string[] {
  return Object.keys(parent).filter((name) => !isOwnVariable(name) && parent[name]?.includes(credential) === true).sort();
}
