// Turns parsed flags, the environment and the config file into a finished plan, validating
// everything once. Precedence: flags > environment > config file (its profile over its top
// level) > defaults. The only module that reads process.env.
import { hostname, tmpdir, userInfo } from 'node:os';
import { basename } from 'node:path';
import { isatty } from 'node:tty';
import { UsageError } from '../errors.js';
import { holdsApiKey, redactCredentials } from '../credential-shapes.js';
import { isValidPattern } from '../glob.js';
import { isProtectedName, isValidName } from '../names.js';
import { OPTIONS, type ParsedArgs } from '../cli/options.js';
import type { LogFormat, LogLevel } from '../cli/output.js';
import type { FileFormat } from '../inject/file-format.js';
import type { InjectMode, RunPlan } from '../run.js';
import { EnvFileSource } from '../sources/env-file.js';
import { credentialHolders } from '../inject/child-env.js';
import type { SecretSource } from '../sources/source.js';
import type { VaultClientOptions } from '../vault-client/index.js';
import type { ConfigValues } from './config-file.js';
import type { Credential } from './credentials.js';
import { parseSigIgnMask } from '../process/ignored-signals.js';
import { resolveUser, type ChildUser } from '../process/user.js';
import { readEnvSetting } from './env-setting.js';
import { findConfigFile } from './locate.js';

/** The profile of runs and logins that name none. */
const DEFAULT_PROFILE = 'default';

export interface Logging {
  level: LogLevel;
  format: LogFormat;
}

export interface ProcessFacts {
  env: Readonly<Record<string, string | undefined>>;
  uid: number;
  cwd: string;
  onTerminal: boolean;
  /** Signals ignored by whoever started us (nohup, a background job), as read by the launcher. */
  ignoredSignals: NodeJS.Signals[];
}

type Values = ParsedArgs['values'];
type Warn = (code: string, message: string) => void;

/** The one place that reads the parent's environment and terminal. */
export function readProcessFacts(): ProcessFacts {
  return {
    env: { ...process.env },
    uid: process.getuid?.() ?? -1,
    cwd: process.cwd(),
    // Only where /proc/self/stat cannot say whether the terminal delivers Ctrl-C to our group
    // (src/process/foreground.ts): a run with one of these on a terminal most likely gets it.
    onTerminal: isatty(0) || isatty(1) || isatty(2),
    ignoredSignals: parseSigIgnMask(process.env.RWS_SIGNALS_IGNORED_AT_START),
  };
}

export function resolveLogging(values: Values): Logging {
  const format = values['log-format'] ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, got ${describe(format)}`);
  if (values.quiet === true && values.verbose === true) throw new UsageError('--quiet and --verbose cannot be used together');
  return { format, level: values.quiet === true ? 'quiet' : values.verbose === true ? 'verbose' : 'normal' };
}

/** Vault connection settings shared by runs and the token/keys/check commands. */
export interface VaultContext {
  client: VaultClientOptions;
  environment: string | undefined;
  patterns: string[];
  configPath: string | undefined;
  /** --profile or RWS_PROFILE, else `default`: selects the config file's section and the stored login. */
  profile: string;
  /** Whether the config file holds credentials.api_key (login warns that it hides the stored key). */
  configHasApiKey: boolean;
  /** Run settings the config file may also hold. */
  injectAs: string | undefined;
  keepEnv: string[] | undefined;
  credential(): Promise<Credential>;
}

export async function resolveVaultContext(values: Values, facts: ProcessFacts, warn: Warn, debug: (message: string) => void, progress?: (text: string | undefined) => void): Promise<VaultContext> {
  const env = facts.env;
  const setting = (name: string) => readEnvSetting(env, name);
  const configPath = await findConfigFile({ explicit: str(values.config) ?? (await setting('RWS_CONFIG')), cwd: facts.cwd, home: env.HOME, xdgConfigHome: env.XDG_CONFIG_HOME });
  const profile = str(values.profile) ?? (await setting('RWS_PROFILE'));
  let config: ConfigValues = {};
  if (configPath !== undefined) {
    const { loadConfigFile } = await import('./config-file.js');
    config = (await loadConfigFile(configPath, profile, env)).values;
    debug(`read config file ${configPath}${profile ? ` (profile ${profile})` : ''}`);
  }
  // Without a config file a profile still names which stored login (run-with-secrets login) to use.
  const baseUrl = str(values['vault-url']) ?? (await setting('RWS_VAULT_URL')) ?? config.vault_url;
  const client: VaultClientOptions = {
    baseUrl: baseUrl ?? '',
    timeoutMs: seconds(...firstGiven(['--timeout', str(values.timeout)], ['RWS_TIMEOUT', await setting('RWS_TIMEOUT')], [`timeout in ${configPath}`, config.timeout]), 10) * 1000,
    retries: count(...firstGiven(['--retries', str(values.retries)], ['RWS_RETRIES', await setting('RWS_RETRIES')], [`retries in ${configPath}`, config.retries]), 2),
    caFile: str(values['ca-file']) ?? env.RWS_CA_FILE ?? config.ca_file,
    insecureHttp: values['insecure-http'] === true,
    debug,
    progress,
  };
  const configApiKey = config.credentials?.api_key !== undefined && configPath ? { value: config.credentials.api_key, path: configPath } : undefined;
  return {
    client,
    environment: str(values.environment) ?? (await setting('RWS_ENVIRONMENT')) ?? config.environment,
    patterns: config.key_patterns ?? [],
    configPath,
    profile: profile ?? DEFAULT_PROFILE,
    configHasApiKey: configApiKey !== undefined,
    credential: async () => {
      const { missingCredential, resolveCredential } = await import('./credentials.js');
      const storedApiKey = () => findStoredApiKey(client.baseUrl, profile ?? DEFAULT_PROFILE, facts);
      const credential = await resolveCredential({ tokenFileFlag: str(values['token-file']), tokenFlag: str(values.token), env, configApiKey, storedApiKey, warn });
      if (!credential) throw missingCredential(client.baseUrl !== '', profile);
      debug(`using the ${credential.kind === 'token' ? 'token' : 'API key'} from ${credential.origin}`);
      return credential;
    },
    injectAs: config.inject_as,
    keepEnv: config.keep_env,
  };
}

/** The parent environment without the variables that hold the credential (child-env.ts). */
function withoutCredential(env: ProcessFacts['env'], credential: Credential, debug: (message: string) => void): ProcessFacts['env'] {
  const holders = credentialHolders(env, credential.value);
  if (holders.length === 0) return env;
  debug(`not passing ${holders.join(', ')} to the child: ${holders.length === 1 ? 'it holds' : 'they hold'} the ${credential.kind === 'token' ? 'token' : 'API key'} in use`);
  const kept: Record<string, string | undefined> = { ...env };
  for (const name of holders) delete kept[name];
  return kept;
}

/** The key `login` stored for this vault URL and profile; loads the store (and yaml) only when asked. */
async function findStoredApiKey(baseUrl: string, profile: string, facts: ProcessFacts): Promise<{ value: string; origin: string } | undefined> {
  const { credentialsPath, findLogin, readLogins, vaultUrlKey } = await import('./credential-store.js');
  const path = credentialsPath(facts.env);
  const url = vaultUrlKey(baseUrl);
  if (path === undefined || url === undefined) return undefined;
  const login = findLogin(await readLogins(path, facts.uid), url, profile);
  return login && { value: login.api_key, origin: `the stored login for ${url}, profile ${profile} (${path})` };
}

export async function resolveRunPlan(args: ParsedArgs, facts: ProcessFacts, warn: Warn, debug: (message: string) => void, progress?: (text: string | undefined) => void): Promise<RunPlan> {
  const values = args.values;
  if (args.words.length > 0) {
    // `--fallback PATH` with a space: the path is a stray word, since the value is optional.
    const hint = values.fallback === '' ? `--fallback takes a path only as --fallback=PATH; run-with-secrets [options] -- <command> [args...]` : 'run-with-secrets [options] -- <command> [args...]';
    throw new UsageError(`unknown command ${describe(args.words[0])}; put -- before the program to run`, hint);
  }
  const dryRun = values['dry-run'] === true;
  const command = args.command ?? [];
  if (command.length === 0 && !dryRun) throw new UsageError('no command given', 'run-with-secrets [options] -- <command> [args...]');

  const flagPatterns = validPatterns('--key-pattern', list(values['key-pattern']));
  const keys = list(values.key);
  for (const key of keys) {
    if (!isValidName(key)) throw new UsageError(`--key ${describe(key)} is not a valid variable name`, 'names match [A-Za-z_][A-Za-z0-9_]*');
  }
  const envFiles = list(values['env-file']);
  const sopsFiles = list(values['sops-file']);
  const local = envFiles.length > 0 || sopsFiles.length > 0;
  const fallback = values.fallback !== undefined || values.offline === true || values['fallback-max-age'] !== undefined;
  if (fallback && local) throw new UsageError('--fallback, --fallback-max-age and --offline apply to the vault, not to --env-file or --sops-file');
  // Checked with local files too: a config tried locally first must fail there as it would in
  // production, not pass with a --ttl 0 the vault run then refuses.
  const ttlMinutes = count('--ttl', str(values.ttl), 1, 1);
  const subject = validSubject(str(values.subject));

  // The config file is read for every run (it may set inject_as or keep_env), but a run with an
  // explicit local source never talks to the vault.
  const vault = await resolveVaultContext(values, facts, warn, debug, progress);
  const patterns = flagPatterns.length > 0 || keys.length > 0 ? flagPatterns : validPatterns('key_patterns', vault.patterns);

  let sources: SecretSource[];
  let parentEnv = facts.env;
  if (local) {
    sources = [...envFiles.map((path) => new EnvFileSource(path))];
    if (sopsFiles.length > 0) {
      const { SopsFileSource } = await import('../sources/sops-file.js');
      sources.push(...sopsFiles.map((path) => new SopsFileSource(path, { SOPS_AGE_KEY: facts.env.SOPS_AGE_KEY, SOPS_AGE_KEY_FILE: facts.env.SOPS_AGE_KEY_FILE, XDG_CONFIG_HOME: facts.env.XDG_CONFIG_HOME, HOME: facts.env.HOME })));
    }
  } else {
    if (!vault.client.baseUrl) {
      throw new UsageError('no source of secrets given', 'pass --env-file PATH or --sops-file PATH, or configure a vault with --vault-url / RWS_VAULT_URL');
    }
    if (!vault.environment) throw new UsageError('no vault environment given', 'pass -e ENVIRONMENT (or set RWS_ENVIRONMENT)');
    // Start loading the HTTP client now; it compiles while the credential files are read.
    import('../vault-client/index.js').catch(() => undefined);
    const { VaultSource } = await import('../sources/vault.js');
    const settings = {
      client: vault.client,
      environment: validEnvironment(vault.environment),
      patterns,
      keys,
      credential: await vault.credential(),
      subject: subject ?? defaultSubject(facts, command[0]),
      ttlMinutes,
      perKeyRequests: values['per-key-requests'] === true,
      fallback,
      fallbackHome: { env: { XDG_STATE_HOME: facts.env.XDG_STATE_HOME, HOME: facts.env.HOME }, uid: facts.uid },
    };
    const source = new VaultSource(settings);
    parentEnv = withoutCredential(facts.env, settings.credential, debug);
    if (!fallback) sources = [source];
    else {
      const { withFallback } = await import('../fallback/settings.js');
      const path = values.fallback === undefined ? undefined : String(values.fallback);
      sources = [withFallback(source, { ...settings, path, maxAge: str(values['fallback-max-age']), offline: values.offline === true, watch: values.watch === true, env: facts.env, uid: facts.uid, cwd: facts.cwd })];
    }
  }

  const keepEnv = validPatterns('--keep-env', list(values['keep-env']).length > 0 ? list(values['keep-env']) : (vault.keepEnv ?? []));
  const allowNames = list(values['allow-name']);
  for (const name of allowNames) {
    if (!isValidName(name)) throw new UsageError(`--allow-name ${describe(name)} is not a valid variable name`);
  }
  const injectAs = oneOf<InjectMode>('--inject-as', values['inject-as'] ?? vault.injectAs ?? 'env', ['env', 'file', 'fd']);
  const fileFormat = oneOf<FileFormat>('--file-format', values['file-format'] ?? 'dotenv', ['dotenv', 'shell', 'json']);
  const fileVar = String(values['file-var'] ?? 'SECRETS_FILE');
  if (!isValidName(fileVar) || isProtectedName(fileVar)) {
    throw new UsageError(`--file-var ${describe(fileVar)} must be a valid, unprotected variable name`);
  }
  let user: ChildUser | undefined;
  const userSpec = str(values.user);
  if (userSpec !== undefined) {
    // Only root can start a process as someone else; refusing up front beats an EPERM at spawn.
    if (facts.uid !== 0) throw new UsageError('--user needs run-with-secrets to run as root', 'run it as root (e.g. from a root cron job or systemd unit), or drop --user');
    user = resolveUser(userSpec);
  }
  if (injectAs === 'fd' && process.platform !== 'linux') {
    throw new UsageError('--inject-as fd needs Linux (/dev/fd of an unlinked file)', 'use --inject-as file');
  }
  const watch = await resolveWatch(values, injectAs);
  return {
    sources,
    selection: { patterns, keys, patternsFrom: patterns.length > 0 && flagPatterns.length === 0 ? vault.configPath : undefined, allowNames: new Set(allowNames), allowEmpty: values['allow-empty'] === true, throughShell: injectAs === 'env' ? facts.ignoredSignals : undefined },
    injectAs,
    fileVar,
    fileFormat,
    keepEnv,
    pristine: values.pristine === true,
    mask: values.mask === true,
    dryRun,
    killAfterMs: parseKillAfter(values['kill-after']),
    command: command[0] ?? '',
    args: command.slice(1),
    parentEnv,
    // The child user cannot pass through root's XDG_RUNTIME_DIR: /dev/shm or the temp dir then.
    placement: { xdgRuntimeDir: user ? undefined : facts.env.XDG_RUNTIME_DIR, tmpDir: tmpdir(), uid: facts.uid },
    user,
    onTerminal: facts.onTerminal,
    ignoredSignals: facts.ignoredSignals,
    watch,
  };
}

/** --watch and its flags; the module that reads them is loaded only when one is given. */
async function resolveWatch(values: Values, injectAs: InjectMode): Promise<RunPlan['watch']> {
  const given = OPTIONS.some((spec) => spec.group === 'Watch' && values[spec.name] !== undefined && values[spec.name] !== false);
  if (!given) return undefined;
  const { resolveWatchSettings, strayWatchFlags } = await import('../watch/settings.js');
  if (values.watch !== true) throw new UsageError(`${strayWatchFlags(values).join(', ')} only ${strayWatchFlags(values).length === 1 ? 'means' : 'mean'} something with --watch`, 'add --watch, or drop the flag');
  if (values['kill-after'] !== undefined) throw new UsageError('--kill-after does not apply with --watch', 'use --stop-timeout: the group is killed that long after the stop signal');
  return resolveWatchSettings(values, injectAs);
}

export function validPatterns(flag: string, patterns: string[]): string[] {
  for (const pattern of patterns) {
    if (!isValidPattern(pattern)) throw new UsageError(`${flag} ${describe(pattern)} is not a valid pattern`, 'patterns use letters, digits, _ and the wildcards * and ?');
  }
  return patterns;
}

/** Environment names travel in URL paths: keep them to a safe, simple grammar. */
export function validEnvironment(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name)) {
    throw new UsageError(`environment ${describe(name)} is not a valid name`, 'environment names use letters, digits, _ and -');
  }
  return name;
}

/**
 * The vault's grammar for a subject (1 to 256 characters, no control character, no API key): a
 * 400 on the mint said far less, and a key would have been sent in the body.
 */
export function validSubject(subject: string | undefined): string | undefined {
  if (subject !== undefined && holdsApiKey(subject)) {
    throw new UsageError('--subject looks like an API key: the vault refuses a subject holding one, as it would be kept in tokens and shown', 'give a name for the audit trail, e.g. --subject "nightly-backup"; the API key goes in RWS_API_KEY_FILE');
  }
  if (subject === undefined || /^[^\p{Cc}\p{Cs}]{1,256}$/u.test(subject)) return subject;
  throw new UsageError(`--subject must be 1 to 256 characters without control characters, got ${[...subject].length} characters${/[\p{Cc}\p{Cs}]/u.test(subject) ? ' with a control character' : ''}`, 'e.g. --subject "nightly-backup"');
}

/** Who runs us, for audit subjects: cron and systemd often set no USER, and "unknown" says nothing. */
export function subjectUser(facts: ProcessFacts): string {
  const user = facts.env.USER || facts.env.LOGNAME;
  if (user) return user;
  try {
    return userInfo().username;
  } catch {
    return String(facts.uid);
  }
}

function defaultSubject(facts: ProcessFacts, command: string | undefined): string {
  const subject = `${subjectUser(facts)}@${hostname()}:${command ? basename(command) : 'run-with-secrets'}`;
  // The vault refuses a subject holding a control character, half an emoji or an API key (a 400
  // on the mint, and the run fails): a command's file name may hold a newline, so those become
  // "?", the cut counts code points, and a key is redacted.
  return [...redactCredentials(subject).replace(/[\p{Cc}\p{Cs}]/gu, '?')].slice(0, 200).join('');
}

function parseKillAfter(value: Values[string]): number | undefined {
  if (value === undefined) return undefined;
  return Math.round(seconds('--kill-after', String(value), 0) * 1000);
}

/**
 * The first value set, with the name it was set under: an error then names what the user wrote
 * (RWS_TIMEOUT=30s in a crontab), not a flag that appears nowhere in the command.
 */
function firstGiven(...candidates: Array<[string, string | number | undefined]>): [string, string | number | undefined] {
  return candidates.find(([, value]) => value !== undefined) ?? ['', undefined];
}

/** A positive number of seconds (fractions allowed), at most a day. */
function seconds(flag: string, value: string | number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const text = String(value);
  const parsed = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(parsed) || parsed <= 0 || parsed > 86_400) {
    throw new UsageError(`${flag} expects a number of seconds over 0 and at most 86400 (such as 30 or 2.5), got ${describe(text)}`);
  }
  return parsed;
}

/** A whole number in [min, 1000]. */
export function count(flag: string, value: string | number | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^\d{1,4}$/.test(text) || Number(text) < min || Number(text) > 1000) {
    throw new UsageError(`${flag} expects a whole number from ${min} to 1000, got ${describe(text)}`);
  }
  return Number(text);
}

function oneOf<T extends string>(flag: string, value: unknown, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag} must be one of ${choices.join(', ')}, got ${describe(value)}`);
}

export function str(value: Values[string]): string | undefined {
  if (value === undefined || typeof value === 'boolean') return undefined;
  return Array.isArray(value) ? value[value.length - 1] : value;
}

export function list(value: Values[string]): string[] {
  if (value === undefined || typeof value === 'boolean') return [];
  return Array.isArray(value) ? value : [value];
}

/** Quotes user input for a message, shortened: flags never carry secrets, but keep lines short. */
function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}
