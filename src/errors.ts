// Every failure the tools report is an RwsError with a stable code. Users and scripts match on
// `code`, never on message text. Messages and hints never contain a secret value, a token or an
// API key: callers pass names only.

/** Exit status of the wrapper when it fails itself (never the child's status). */
export const EXIT_WRAPPER_FAILURE = 125;
/** The command was found but could not be executed (as in POSIX shells and env(1)). */
export const EXIT_CANNOT_EXECUTE = 126;
/** The command was not found. */
export const EXIT_NOT_FOUND = 127;

/** --watch: the vault refused the credential on a refresh (sysexits EX_NOPERM). */
export const EXIT_REVOKED = 77;
/** --watch --on-change exit: the secrets changed; a supervisor restarts us (sysexits EX_TEMPFAIL). */
export const EXIT_SECRETS_CHANGED = 75;

export interface RwsErrorOptions {
  hint?: string;
  cause?: unknown;
  exitCode?: number;
}

export class RwsError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: string, message: string, options: RwsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? EXIT_WRAPPER_FAILURE;
  }
}

/** Bad flags or flag combinations. */
export class UsageError extends RwsError {
  constructor(message: string, hint = 'see run-with-secrets --help') {
    super('RWS_USAGE', message, { hint });
  }
}

/** A source (a .env file, a SOPS file, the vault) could not be read or parsed. */
export class SourceError extends RwsError {
  constructor(code: 'RWS_SOURCE_UNREADABLE' | 'RWS_SOURCE_INVALID', message: string, hint?: string, cause?: unknown) {
    super(code, message, { hint, cause });
  }
}

/** A key asked for by name with --key does not exist in the sources. */
export class SecretMissingError extends RwsError {
  constructor(readonly key: string) {
    super('RWS_SECRET_MISSING', `secret ${key} was asked for with --key but no source has it`, {
      hint: 'check the name, or list what the source holds with --dry-run',
    });
  }
}

/** A -k pattern (or a key_patterns entry) that matches no key of the sources: a typo, most likely. */
export class PatternUnmatchedError extends RwsError {
  /** `configPath`: the pattern is the config file's key_patterns, which no flag on the command line shows. */
  constructor(
    readonly pattern: string,
    configPath?: string,
  ) {
    super('RWS_SECRET_MISSING', `key pattern ${pattern}${configPath === undefined ? '' : ` (key_patterns in ${configPath})`} matches no key of the sources`, {
      hint:
        configPath === undefined
          ? 'check the pattern (--dry-run without -k lists the names), or pass --allow-empty if an empty selection is expected'
          : `check key_patterns in ${configPath}, or choose for this run with -k or --key; --allow-empty if an empty selection is expected`,
    });
  }
}

/** A secret name or value that must not be injected. */
export class NameRefusedError extends RwsError {
  constructor(code: 'RWS_NAME_INVALID' | 'RWS_NAME_PROTECTED' | 'RWS_VALUE_INVALID', message: string, hint: string) {
    super(code, message, { hint });
  }
}

/** A value that the chosen file format cannot carry exactly. */
export class FormatError extends RwsError {
  constructor(readonly key: string, format: string, reason: string, suggestion: string) {
    super('RWS_FORMAT_UNSUPPORTED', `the value of ${key} cannot be written exactly as ${format}: ${reason}`, {
      hint: `use --file-format ${suggestion}`,
    });
  }
}

/** The secrets file could not be created, checked or removed safely. */
export class SecretsFileError extends RwsError {
  constructor(message: string, hint?: string, cause?: unknown) {
    super('RWS_SECRETS_FILE', message, { hint, cause });
  }
}

/** The child could not be started. */
export class SpawnError extends RwsError {
  constructor(code: 'RWS_COMMAND_NOT_FOUND' | 'RWS_COMMAND_NOT_EXECUTABLE' | 'RWS_SPAWN_FAILED' | 'RWS_ENV_TOO_LARGE', message: string, exitCode: number, hint?: string) {
    super(code, message, { hint, exitCode });
  }
}

/** The config file (or an RWS_X_FILE, or the CA file) could not be read or is not valid. */
export class ConfigError extends RwsError {
  constructor(code: 'RWS_CONFIG_INVALID' | 'RWS_CONFIG_UNREADABLE' | 'RWS_CREDENTIAL_FILE_MODE', message: string, hint?: string) {
    super(code, message, { hint });
  }
}

/** The wrapper's own credential (API key or token) is missing, malformed or exposed. */
export class CredentialError extends RwsError {
  constructor(code: 'RWS_CREDENTIAL_MISSING' | 'RWS_CREDENTIAL_INVALID' | 'RWS_CREDENTIAL_FILE_MODE' | 'RWS_CREDENTIAL_UNREADABLE' | 'RWS_CREDENTIAL_STORE_INVALID' | 'RWS_CREDENTIAL_STORE_BUSY', message: string, hint: string) {
    super(code, message, { hint });
  }
}

/** `login` stored nothing: the vault refused the key, or the prompt was cancelled (exit 130, as a Ctrl-C death reads). */
export class LoginError extends RwsError {
  constructor(code: 'RWS_LOGIN_REFUSED' | 'RWS_LOGIN_CANCELLED', message: string, hint: string) {
    super(code, message, { hint, exitCode: code === 'RWS_LOGIN_CANCELLED' ? 130 : EXIT_WRAPPER_FAILURE });
  }
}

export type FallbackErrorCode =
  | 'RWS_FALLBACK_MISSING'
  | 'RWS_FALLBACK_EXPIRED'
  | 'RWS_FALLBACK_TOO_OLD'
  | 'RWS_FALLBACK_FUTURE'
  | 'RWS_FALLBACK_INVALID'
  | 'RWS_FALLBACK_UNSAFE'
  | 'RWS_FALLBACK_UNREADABLE'
  | 'RWS_FALLBACK_NOT_REMOVED';

/** The offline fallback cache (--fallback, --offline) could not be used: each refusal has its own code. */
export class FallbackError extends RwsError {
  declare readonly code: FallbackErrorCode;

  constructor(code: FallbackErrorCode, message: string, hint: string) {
    super(code, message, { hint });
  }
}

/** --watch ended for a reason of its own (not the child's exit). */
export class WatchError extends RwsError {
  constructor(code: 'RWS_WATCH_REVOKED', message: string, hint: string, exitCode: number) {
    super(code, message, { hint, exitCode });
  }
}

/** A file of the installed package is missing (a partial copy of dist/, say). */
export class InstallError extends RwsError {
  constructor(missing: readonly string[]) {
    super('RWS_INSTALL_INCOMPLETE', `the installed run-with-secrets lacks ${missing.join(', ')}`, {
      hint: 'reinstall run-with-secrets (in a checkout: npm run build), and copy all of dist/, not only its .js files',
    });
  }
}

/**
 * The wrapper's own stdout could not be written (a file on a full disk): the output of --dry-run
 * or a subcommand is incomplete, or a --mask run's child output was lost.
 */
export class OutputError extends RwsError {
  constructor(errno: string, childOutput = false) {
    super('RWS_OUTPUT_FAILED', `could not write ${childOutput ? "the child's output " : ''}to stdout (${errno}): ${childOutput ? 'some of it is lost' : 'what was written there is incomplete'}`, {
      hint: 'check where stdout goes: a full disk (ENOSPC), a quota (EDQUOT) or a size limit (EFBIG)',
    });
  }
}

/** Anything unexpected: reported with its code only, never with its message (it may hold data). */
export class InternalError extends RwsError {
  constructor(cause: unknown) {
    super('RWS_INTERNAL', 'internal error', {
      hint: 'please report this with the command line (not the secrets) that caused it',
      cause,
    });
  }
}

export function toRwsError(error: unknown): RwsError {
  return error instanceof RwsError ? error : new InternalError(error);
}
