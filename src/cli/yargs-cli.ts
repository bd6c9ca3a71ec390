// The full command line through yargs: --help with examples, --version, `completion`, and the
// careful explanation of whatever the fast parser did not accept. Loaded only when needed.
import type { Argv } from 'yargs';
import { UsageError } from '../errors.js';
import { COMMAND_OPTIONS, expandOptionalValues, OPTIONS, type ParsedArgs } from './options.js';

export type SlowParse = { kind: 'args'; args: ParsedArgs } | { kind: 'output'; text: string };

const USAGE = `Usage: $0 [options] -- <command> [args...]

Runs <command> with secrets injected, in a trimmed environment. Put -- before the command.`;

const EPILOGUE = `Exit status: the command's own; 125 when run-with-secrets itself fails; 126 when the command
cannot be executed; 127 when it is not found. When the command dies of a signal, run-with-secrets
dies of the same signal (128+N for signals that dump core). With --watch: 75 after --on-change exit,
77 when the vault refuses the credential on a refresh (--on-revoke exit). login: 130 when cancelled.

The child inherits only PATH, HOME, USER, LOGNAME, SHELL, TERM, COLORTERM, LANG, LANGUAGE, LC_*, TZ,
NO_COLOR, COLUMNS, LINES, XDG_RUNTIME_DIR and TMPDIR, plus --keep-env and the secrets.`;

export async function parseWithYargs(given: readonly string[], version: string): Promise<SlowParse> {
  const argv = expandOptionalValues(given);
  const separator = argv.indexOf('--');
  const head = separator === -1 ? [...argv] : argv.slice(0, separator);
  const command = separator === -1 ? undefined : argv.slice(separator + 1);

  // yargs ships only as an ES module: import(), so that the wrapper's CommonJS build can load it.
  const { default: yargs } = await import('yargs');
  const cli = yargs(head)
    .scriptName('run-with-secrets')
    .usage(USAGE)
    .example('$0 --env-file .env -- node app.js', 'run app.js with the secrets of .env as variables')
    .example("$0 --env-file .env -k 'DB_*' --inject-as file -- ./legacy-app", 'only DB_* keys, written to a 0600 file whose path is in $SECRETS_FILE')
    .example('$0 --env-file .env --inject-as fd --file-format json -- ./app', 'the app reads /dev/fd/3; nothing is left on disk, even after kill -9')
    .example("$0 -e prod -k 'SERVICE_B_*' -- ./app", 'fetch SERVICE_B_* of prod from the vault (RWS_VAULT_URL, RWS_API_KEY_FILE) and run ./app')
    .example('$0 --env-file .env --dry-run', 'show which names would be injected, without values')
    .example("$0 -e prod -k 'DB_*' --watch -- ./server", 'restart ./server (its whole process group) when a DB_* secret changes in the vault; --dry-run --watch shows what would be watched')
    .example('$0 --env-file .env --watch --inject-as file --on-change signal:SIGHUP -- ./app', 'rewrite $SECRETS_FILE and send SIGHUP when .env changes (signal: needs file or fd injection)')
    .example("$0 --env-file prod.env --log-format json --kill-after 30 -- ./cron-job.sh", 'a cron job: JSON diagnostics, SIGKILL 30 s after a stop signal')
    .epilogue(EPILOGUE)
    .version(version)
    .help()
    .alias('help', 'h')
    // Options are strict; stray words are reported by resolve (with the hint to put -- first).
    .strictOptions()
    .exitProcess(false)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .parserConfiguration({ 'camel-case-expansion': false, 'strip-aliased': true, 'boolean-negation': true, 'duplicate-arguments-array': true, 'greedy-arrays': false })
    .command('token <action>', 'Mint a token for use elsewhere (generate), or revoke the one in RWS_TOKEN / --token-file (revoke)', (y) =>
      declare(y, COMMAND_OPTIONS.token, {
        ttl: 'Lifetime of the minted token in minutes (default 5)',
        subject: 'Who asks, for the audit log (default token-generate@$USER)',
        'key-pattern': 'The one glob of names the token may read (* and ?; default: key_patterns of the config file, else *)',
      })
        .positional('action', { choices: ['generate', 'revoke'] as const, describe: 'generate or revoke' })
        .option('usage-limit', { type: 'string', requiresArg: true, describe: 'Requests the token may make (default 1)' })
        .option('json', { type: 'boolean', describe: 'Print {token, jti, expires_at, ...} as JSON' })
        .option('force', { type: 'boolean', describe: 'Print the token even to a terminal' })
        // umask 077: the token file must be 0600, or RWS_TOKEN_FILE refuses it (RWS_CREDENTIAL_FILE_MODE).
        .example("(umask 077; $0 token generate -e prod -k 'BACKUP_*' --ttl 30 --usage-limit 5 > token)", 'a token for five requests in the next 30 minutes, in a 0600 file')
        .example('RWS_TOKEN_FILE=token $0 token revoke', 'revoke it'),
    )
    .command('keys', 'List the names in scope (never values): keys -e ENV [-k GLOB]', (y) =>
      declare(y, COMMAND_OPTIONS.keys, {
        subject: 'Who asks, for the audit log (default keys@$USER)',
        'key-pattern': 'Only list names matching this glob (* and ?; repeatable; default: the patterns the API key grants in ENV)',
      }).example("$0 keys -e prod -k 'SERVICE_B_*'", 'the names of prod matching SERVICE_B_* (within what the API key grants)'),
    )
    .command('check', 'Check config, credential, server (TLS), token mint and scope, one line each', (y) =>
      declare(y, COMMAND_OPTIONS.check, {
        subject: 'Who asks, for the audit log (default check@$USER)',
        'key-pattern': 'Check the selection of a run with this -k: a token and a scope line per pattern (repeatable)',
      }).example("$0 check -e prod -k 'SERVICE_B_*'", 'walk every step a run of that selection takes; stops at the first ✗'),
    )
    .command('login', 'Check an API key (read from stdin, or a prompt that does not echo) with the vault and store it for this vault URL and --profile', (y) =>
      declare(y, COMMAND_OPTIONS.login)
        .example('$0 login --vault-url https://vault.internal:8200', 'paste the key at the prompt; later runs against that vault need no RWS_API_KEY')
        .example('$0 login --profile ci < key-file', 'the key from a file, stored under profile ci'),
    )
    .command('logout', 'Forget the stored API key of this vault URL and --profile (--all: every one); the key stays valid at the vault', (y) =>
      declare(y, COMMAND_OPTIONS.logout)
        .option('all', { type: 'boolean', describe: 'Remove every stored key (the whole credentials file)' })
        .example('$0 logout --vault-url https://vault.internal:8200 --profile ci', 'forget the key stored for that vault and profile')
        .example('$0 logout --all', 'forget every stored key'),
    )
    .command('fallback <action>', 'Remove the offline fallback copies (clean): every one in $XDG_STATE_HOME/run-with-secrets/fallback, or the one of --fallback=PATH', (y) =>
      declare(y, COMMAND_OPTIONS.fallback, { fallback: 'Only as --fallback=PATH: remove the copy at PATH (and its queued offline uses) instead of every one in the default place' })
        .positional('action', { choices: ['clean'] as const, describe: 'clean' })
        .example('$0 fallback clean', 'forget every cached copy, and the offline uses not yet reported'),
    )
    .command('whoami', "Show the API key in use: its id, name, grants and expiry as the vault sees them (never the key)", (y) =>
      declare(y, COMMAND_OPTIONS.whoami).example('$0 whoami --profile ci', 'which key a run with --profile ci would use, and what it grants'),
    )
    // Completion itself is ours (cli/completion.ts): listed here for --help only.
    .command('completion', 'Print a bash completion script (add `source <(run-with-secrets completion)` to ~/.bashrc; zsh: after bashcompinit)', (y) =>
      y.example('source <($0 completion)', 'complete subcommands, options and their choices in this shell'),
    );

  declare(cli, OPTIONS.map((spec) => spec.name));

  const { parsed, output } = await new Promise<{ parsed: Record<string, unknown>; output: string }>((resolve, reject) => {
    cli.parse(head, {}, (error: Error | undefined, result: Record<string, unknown>, text: string) => {
      if (error) reject(new UsageError(firstLine(error.message)));
      else resolve({ parsed: result, output: text });
    });
  });
  if (output) return { kind: 'output', text: output };

  const values: ParsedArgs['values'] = {};
  for (const spec of OPTIONS) {
    const value = parsed[spec.name] as string | boolean | string[] | undefined;
    values[spec.name] = spec.array ? toList(value) : Array.isArray(value) ? value[value.length - 1] : value;
  }
  for (const extra of ['usage-limit', 'json', 'force', 'all']) values[extra] = parsed[extra] as string | boolean | undefined;
  let words = (parsed._ as unknown[]).map(String);
  if ((words[0] === 'token' || words[0] === 'fallback') && typeof parsed.action === 'string') words = [words[0], parsed.action, ...words.slice(1)];
  return { kind: 'args', args: { values, words, command } };
}

/**
 * Declares options on the top level or one subcommand. Not global: a subcommand's --help lists
 * only what it reads (COMMAND_OPTIONS), not the run options. `descriptions` replaces a run
 * option's text where the subcommand's default or meaning differs (token generate mints for 5
 * minutes; its -k scopes a token, injects nothing).
 */
function declare<T>(cli: Argv<T>, names: readonly string[], descriptions: Readonly<Record<string, string>> = {}): Argv<T> {
  for (const spec of OPTIONS) {
    if (!names.includes(spec.name)) continue;
    cli.option(spec.name, {
      type: spec.type,
      global: false,
      ...(spec.alias ? { alias: spec.alias } : {}),
      ...(spec.array ? { array: true, requiresArg: true } : {}),
      ...(spec.type === 'string' && !spec.array ? { requiresArg: true } : {}),
      ...(spec.choices ? { choices: [...spec.choices] } : {}),
      ...(spec.default !== undefined ? { default: spec.default } : {}),
      description: descriptions[spec.name] ?? spec.description,
      group: `${spec.group}:`,
    });
  }
  return cli;
}

function toList(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** yargs explains over several lines; our errors are one line. */
function firstLine(message: string): string {
  return message.split('\n').map((line) => line.trim()).filter(Boolean).join(' ');
}
