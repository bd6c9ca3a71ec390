// The wrapper's options, declared once. Two parsers read this table: node:util's parseArgs on the
// hot path (a plain run costs no parser start-up) and yargs for --help, completion and anything
// the fast path does not recognise. Both must agree; test/unit/cli/options.test.ts checks it.
import { parseArgs } from 'node:util';

export interface OptionSpec {
  name: string;
  alias?: string;
  type: 'string' | 'boolean';
  array?: boolean;
  choices?: readonly string[];
  default?: string | boolean;
  description: string;
  group: 'Sources' | 'Vault' | 'Selection' | 'Injection' | 'Environment' | 'Process' | 'Watch' | 'Output';
}

export const OPTIONS: readonly OptionSpec[] = [
  { name: 'env-file', type: 'string', array: true, group: 'Sources', description: 'Read secrets from a local dotenv file instead of the vault (repeatable; later files override earlier ones)' },
  { name: 'sops-file', type: 'string', array: true, group: 'Sources', description: 'Read secrets from a local SOPS file (age key from SOPS_AGE_KEY_FILE or SOPS_AGE_KEY; repeatable)' },
  { name: 'environment', alias: 'e', type: 'string', group: 'Vault', description: 'Vault environment to read (or RWS_ENVIRONMENT)' },
  { name: 'vault-url', type: 'string', group: 'Vault', description: 'Vault URL (or RWS_VAULT_URL); the API key comes only from RWS_API_KEY, RWS_API_KEY_FILE, the config file or run-with-secrets login' },
  { name: 'config', type: 'string', group: 'Vault', description: 'Config file (default ./.run-with-secrets.yaml, then ~/.config/run-with-secrets/config.yaml)' },
  { name: 'profile', type: 'string', group: 'Vault', description: 'Named profile of the config file (dev, staging, prod, ...), and of the key stored by login (default: default)' },
  { name: 'token-file', type: 'string', group: 'Vault', description: 'Use a token minted elsewhere, read from this 0600 file (or RWS_TOKEN / RWS_TOKEN_FILE)' },
  { name: 'token', type: 'string', group: 'Vault', description: 'Token on the command line: visible to other users, prefer RWS_TOKEN' },
  { name: 'subject', type: 'string', group: 'Vault', description: 'Who asks, for the audit log (default user@host:command)' },
  { name: 'ttl', type: 'string', group: 'Vault', description: 'Lifetime of the minted token in minutes (default 1)' },
  { name: 'timeout', type: 'string', group: 'Vault', description: 'Seconds for connect, headers and body, each (default 10)' },
  { name: 'retries', type: 'string', group: 'Vault', description: 'Retries on connection errors and 502/503/504 (default 2)' },
  { name: 'ca-file', type: 'string', group: 'Vault', description: 'PEM file of the CA that signed the vault certificate (or RWS_CA_FILE)' },
  { name: 'insecure-http', type: 'boolean', group: 'Vault', description: 'Allow http:// to a host other than loopback' },
  { name: 'per-key-requests', type: 'boolean', group: 'Vault', description: 'Fetch with one GET per key (servers without the batch endpoint)' },
  { name: 'fallback', type: 'string', group: 'Vault', description: 'Keep an encrypted copy of the secrets (at PATH with --fallback=PATH) and use it while the vault is unreachable, within the limit the vault sets' },
  { name: 'fallback-max-age', type: 'string', group: 'Vault', description: 'Refuse a fallback copy older than this (default 24h; the vault\'s own limit still applies)' },
  { name: 'offline', type: 'boolean', group: 'Vault', description: 'Do not contact the vault: use the fallback copy, with the same limits' },
  { name: 'key-pattern', alias: 'k', type: 'string', array: true, group: 'Selection', description: 'Only inject keys matching this glob (* and ?, anchored, case-sensitive; repeatable)' },
  { name: 'key', type: 'string', array: true, group: 'Selection', description: 'Inject this exact key; a missing key is an error (repeatable)' },
  { name: 'allow-empty', type: 'boolean', group: 'Selection', description: 'A -k pattern that matches no key is not an error (by default it is: exit 125, RWS_SECRET_MISSING)' },
  { name: 'inject-as', type: 'string', choices: ['env', 'file', 'fd'], group: 'Injection', description: 'env (default): variables; file: a 0600 file in a private RAM-backed directory; fd: that file unlinked and passed as /dev/fd/3' },
  { name: 'file-var', type: 'string', default: 'SECRETS_FILE', group: 'Injection', description: 'Variable that holds the secrets file path (file and fd modes)' },
  { name: 'file-format', type: 'string', choices: ['dotenv', 'shell', 'json'], default: 'dotenv', group: 'Injection', description: 'Format of the secrets file' },
  { name: 'keep-env', type: 'string', array: true, group: 'Environment', description: 'Also pass this parent variable (name or glob; repeatable). RWS_* never pass' },
  { name: 'pristine', type: 'boolean', group: 'Environment', description: 'Inherit nothing from the parent but PATH (and --keep-env)' },
  { name: 'allow-name', type: 'string', array: true, group: 'Environment', description: 'Allow a secret with a protected name such as LD_PRELOAD or PATH (repeatable)' },
  { name: 'mask', type: 'boolean', group: 'Process', description: "Replace secret values in the child's output with ****** (the child's stdout/stderr become pipes: it has no terminal)" },
  { name: 'user', type: 'string', group: 'Process', description: 'Run the command as this user (NAME or NAME:GROUP), so it cannot read the credential of run-with-secrets; only when run as root' },
  { name: 'kill-after', type: 'string', group: 'Process', description: 'SIGKILL the child this many seconds after a forwarded stop signal' },
  { name: 'dry-run', type: 'boolean', group: 'Process', description: 'Print the names that would be injected and the child variables; run nothing' },
  { name: 'watch', type: 'boolean', group: 'Watch', description: "Keep running: when the injected names or values change (vault, --env-file, --sops-file), restart the child's process group (or signal it, or exit). With --dry-run: also print what would be watched, then exit. With --mask: each child's output is masked with its own values (old and new after a reload signal)" },
  { name: 'watch-interval', type: 'string', group: 'Watch', description: 'How often to ask the vault, or re-read local files besides watching them (default 30s; a vault that long-polls answers at once)' },
  { name: 'debounce', type: 'string', group: 'Watch', description: 'Act this long after the last change, so a burst of edits is one restart (default 2s; 0 acts at once)' },
  { name: 'max-wait', type: 'string', group: 'Watch', description: 'Act at the latest this long after the first change of a burst (default 30s)' },
  { name: 'on-change', type: 'string', group: 'Watch', description: 'restart (default), signal:SIG (rewrite the secrets file, then send SIG; --inject-as file or fd only) or exit (status 75, for a supervisor)' },
  { name: 'stop-signal', type: 'string', group: 'Watch', description: "Signal that stops the child's process group (default SIGTERM)" },
  { name: 'stop-timeout', type: 'string', group: 'Watch', description: 'SIGKILL the group this long after the stop signal (default 10s)' },
  { name: 'on-revoke', type: 'string', group: 'Watch', description: 'When the vault refuses the credential (401/403): exit (default; stop the child, exit 77) or keep (stop refreshing, keep the child)' },
  { name: 'quiet', alias: 'q', type: 'boolean', group: 'Output', description: 'Only print errors' },
  { name: 'verbose', alias: 'v', type: 'boolean', group: 'Output', description: 'Explain what happens (names only, never values)' },
  { name: 'log-format', type: 'string', choices: ['text', 'json'], default: 'text', group: 'Output', description: 'Diagnostics on stderr as text or one JSON object per line' },
];

const VAULT_ACCESS = ['environment', 'vault-url', 'config', 'profile', 'token-file', 'token', 'timeout', 'retries', 'ca-file', 'insecure-http', 'quiet', 'verbose', 'log-format'];

/** The options each subcommand reads: its --help lists these and no run options. */
/** Where a stored login is kept and checked: no credential flags, no environment. */
const LOGIN_ACCESS = ['vault-url', 'config', 'profile', 'timeout', 'retries', 'ca-file', 'insecure-http', 'quiet', 'verbose', 'log-format'];

export const COMMAND_OPTIONS: Readonly<Record<'token' | 'keys' | 'check' | 'login' | 'logout' | 'whoami' | 'fallback', readonly string[]>> = {
  token: [...VAULT_ACCESS, 'key-pattern', 'subject', 'ttl'],
  keys: [...VAULT_ACCESS, 'key-pattern', 'subject'],
  check: [...VAULT_ACCESS, 'key-pattern', 'allow-empty', 'subject'],
  login: LOGIN_ACCESS,
  logout: ['vault-url', 'config', 'profile', 'quiet', 'verbose', 'log-format'],
  whoami: LOGIN_ACCESS,
  fallback: ['fallback', 'quiet', 'verbose', 'log-format'],
};

/** Options whose value is optional: `--fallback` alone means the default place, `--fallback=PATH` a file. */
const OPTIONAL_VALUE = new Set(['--fallback']);

/**
 * Both parsers see bare `--fallback` as `--fallback=`, and so `--fallback PATH` (with a space)
 * leaves PATH a stray word: only `--fallback=PATH` names a file, as the usage says.
 */
export function expandOptionalValues(argv: readonly string[]): string[] {
  const separator = argv.indexOf('--');
  return argv.map((word, index) => ((separator === -1 || index < separator) && OPTIONAL_VALUE.has(word) ? `${word}=` : word));
}

/** What the parsers produce: every option by its long name, plus the command after `--`. */
export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  /** Words before `--` that are not options (subcommands). */
  words: string[];
  /** The command and its arguments, after `--`; undefined when there was no `--`. */
  command: string[] | undefined;
}

export type FastParse = { ok: true; args: ParsedArgs } | { ok: false };

/** Words that need the full CLI (help text, completion, version). */
const SLOW_PATH = new Set(['--help', '-h', '--version', 'completion', '--get-yargs-completions']);

/**
 * The hot path: succeeds only for a plain run with known options before `--`. Anything else
 * (help, subcommands, unknown or malformed options) goes to yargs, which knows how to explain.
 */
export function parseFast(given: readonly string[]): FastParse {
  const argv = expandOptionalValues(given);
  const separator = argv.indexOf('--');
  const head = separator === -1 ? argv : argv.slice(0, separator);
  if (head.some((word) => SLOW_PATH.has(word))) return { ok: false };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const spec of OPTIONS) {
    options[spec.name] = { type: spec.type, ...(spec.alias ? { short: spec.alias } : {}), ...(spec.array ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...head], options, strict: true, allowPositionals: true });
  } catch {
    return { ok: false };
  }
  if (parsed.positionals.length > 0) return { ok: false };
  const values: ParsedArgs['values'] = {};
  for (const spec of OPTIONS) {
    const value = (parsed.values as Record<string, string | boolean | string[] | undefined>)[spec.name];
    values[spec.name] = value ?? (spec.array ? [] : spec.default);
  }
  return { ok: true, args: { values, words: [], command: separator === -1 ? undefined : argv.slice(separator + 1) } };
}
