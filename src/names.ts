// Rules for secret names, shared by the wrapper and the server. See shared/SECURITY.md for the
// sources of the protected list.
import { NameRefusedError } from './errors.js';
import { globMatch } from './glob.js';

/** A portable variable name. Checked first: Node passes `LD_PRELOAD=x` through as LD_PRELOAD. */
const NAME_GRAMMAR = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export function isValidName(name: string): boolean {
  return NAME_GRAMMAR.test(name);
}

/**
 * Names that change how programs load code, find binaries or trust peers. Compared
 * case-insensitively (upper-cased); entries may use `*`.
 */
export const PROTECTED_NAMES: readonly string[] = [
  // loader / libc
  'LD_*', 'DYLD_*', '_RLD*', 'GCONV_PATH', 'GLIBC_TUNABLES', 'LOCPATH', 'NLSPATH', 'MALLOC_TRACE',
  'HOSTALIASES', 'LOCALDOMAIN', 'RES_OPTIONS', 'RESOLV_HOST_CONF', 'NIS_PATH', 'GETCONF_DIR',
  'TMPDIR', 'TZDIR',
  // shells
  'BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'IFS', 'CDPATH', 'GLOBIGNORE', 'FPATH',
  'ZDOTDIR', 'NULLCMD', 'READNULLCMD', 'TMPPREFIX', 'BASH_FUNC_*', 'PROMPT_COMMAND',
  // interpreters
  'NODE_OPTIONS', 'NODE_PATH', 'NODE_TLS_REJECT_UNAUTHORIZED', 'NODE_EXTRA_CA_CERTS',
  'NODE_REPL_EXTERNAL_MODULE', 'PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PYTHONINSPECT',
  'PYTHONUSERBASE', 'PYTHONBREAKPOINT', 'PYTHONWARNINGS', 'PERL5OPT', 'PERL5LIB', 'PERLLIB',
  'PERL5DB', 'PERLIO_DEBUG', 'RUBYOPT', 'RUBYLIB', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS',
  'CLASSPATH', 'JDK_JAVA_OPTIONS',
  // tools
  'GIT_SSH_COMMAND', 'GIT_CONFIG_*', 'TERMINFO*', 'TERMCAP', 'KRB5_CONFIG*', 'GIT_SSH',
  'GIT_EXEC_PATH', 'GIT_ASKPASS', 'SSH_ASKPASS', 'PAGER', 'EDITOR', 'VISUAL', 'BROWSER', 'LESSOPEN',
  'NPM_CONFIG_*',
  // trust
  '*_PROXY', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'OPENSSL_CONF',
  // baseline, and our own configuration and credentials
  'PATH', 'HOME', 'SHELL', 'USER', 'LOGNAME', 'RWS_*',
];

/**
 * Variables that sh or bash set, drop or check themselves, so a value given for one does not
 * survive a shell: through `. "$SECRETS_FILE"` (--file-format shell), or the /bin/sh that starts
 * the child when signals were ignored at start (process/ignored-signals.ts). dash rewrites PPID
 * and PWD, and dies on a non-numeric OPTIND, printing the value ("Illegal number: ..."); bash
 * also rewrites SHLVL, LINENO, `_`, RANDOM, SECONDS, BASH_*, keeps UID, EUID and PPID read-only,
 * and prints a bad BASH_XTRACEFD or BASH_COMPAT value. Found by setting each name in dash 0.5.12
 * and bash 5.2, --posix or not. Case-sensitive, as shells are. PS4, IFS, ENV, BASHOPTS and
 * SHELLOPTS are protected names already.
 */
const SHELL_SET_NAMES = new Set([
  'PPID', 'PWD', 'OLDPWD', 'OPTIND', 'OPTERR', 'OPTARG', 'LINENO', 'SHLVL', '_', 'RANDOM', 'SRANDOM',
  'SECONDS', 'HISTCMD', 'BASH', 'BASHPID', 'EPOCHSECONDS', 'EPOCHREALTIME', 'COMP_WORDBREAKS', 'PS1',
  'PS2', 'UID', 'EUID', 'GROUPS', 'DIRSTACK', 'FUNCNAME',
]);

export function isShellSetName(name: string): boolean {
  return SHELL_SET_NAMES.has(name) || name.startsWith('BASH_');
}

export function isProtectedName(name: string): boolean {
  const upper = name.toUpperCase();
  return PROTECTED_NAMES.some((entry) => globMatch(entry, upper));
}

/** Throws unless `name` may be injected; `allowed` holds names let through with --allow-name. */
export function assertInjectableName(name: string, allowed: ReadonlySet<string>): void {
  if (!isValidName(name)) {
    throw new NameRefusedError(
      'RWS_NAME_INVALID',
      `secret name ${JSON.stringify(name.slice(0, 64))} is not a valid variable name`,
      'names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters); rename the secret',
    );
  }
  // RWS_* is ours: the wrapper's credentials must never reach the child, even when asked.
  if (name.toUpperCase().startsWith('RWS_')) {
    throw new NameRefusedError('RWS_NAME_PROTECTED', `secret name ${name} is reserved for run-with-secrets itself`, 'rename the secret');
  }
  if (isProtectedName(name) && !allowed.has(name)) {
    throw new NameRefusedError(
      'RWS_NAME_PROTECTED',
      `secret name ${name} changes how programs load code or find binaries and is refused`,
      `if you really mean it, pass --allow-name ${name}`,
    );
  }
}

/** Throws when a value cannot be carried in an environment variable or file. */
export function assertInjectableValue(name: string, value: string): void {
  if (value.includes('\0')) {
    throw new NameRefusedError('RWS_VALUE_INVALID', `the value of ${name} contains a NUL byte`, 'NUL bytes cannot be passed to a program; fix the secret');
  }
}
