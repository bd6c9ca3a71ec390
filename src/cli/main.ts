// The only place that touches argv, the streams and the exit status. `runCli` returns how the
// process should end, so tests and other front ends can drive the whole CLI.
import { readFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { EXIT_WRAPPER_FAILURE, InternalError, OutputError, type RwsError, toRwsError, UsageError } from '../errors.js';
import { holdsApiKey } from '../credential-shapes.js';
import { readProcessFacts, resolveLogging, resolveRunPlan, type ProcessFacts } from '../config/resolve.js';
import { dieBySignal, shouldReraise, statusForSignal, type Outcome } from '../process/exit-status.js';
import { runWrapper } from '../run.js';
import { COMMAND_OPTIONS, parseFast, type ParsedArgs } from './options.js';
import type { CommandContext } from './commands/context.js';
import type { SecretInput } from './secret-prompt.js';
import { createLogger, wantsColor, type Logger } from './output.js';

const PROGRAM = 'run-with-secrets';
/** `--get-completions` (ours) and `--get-yargs-completions` (the script yargs used to print). */
const COMPLETION_KEY_WORDS = new Set(['--get-completions', '--get-yargs-completions']);
const LOGIN_COMMANDS = new Set(['login', 'logout', 'whoami']);

export interface CliStreams {
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  /**
   * Read by `login` only, so opened only there: touching process.stdin sets up a stream on fd 0
   * (non-blocking for a pipe), which the child of a plain run must inherit untouched.
   */
  stdin?: () => SecretInput;
  /** The errno of the first write to stdout that failed (not EPIPE: a reader gone is no failure). */
  stdoutFailure?: () => string | undefined;
}

export async function runCli(argv: readonly string[], facts: ProcessFacts, streams: CliStreams, load: LoadInfo = {}): Promise<Outcome> {
  // Until the flags are parsed, errors follow a --log-format json seen before `--`, if any.
  let log: Logger = await createLogger({ stream: streams.stderr, level: 'normal', format: earlyLogFormat(argv), color: false, program: PROGRAM });
  try {
    refuseKeyOnArgv(argv);
    const args = await parseArgv(argv, streams);
    if (!args) {
      await assertStdoutWritten(streams);
      return { kind: 'exit', code: 0 };
    }
    const logging = resolveLogging(args.values);
    log = await createLogger({ stream: streams.stderr, ...logging, color: wantsColor(streams.stderr.isTTY, facts.env), terminal: streams.stderr.isTTY === true && facts.env.TERM !== 'dumb', program: PROGRAM });
    if (load.codeCache) log.debug(`cli: code cache ${load.codeCache()}`);
    const color = wantsColor(streams.stdout.isTTY, facts.env);
    const command = await runSubcommand(args, { values: args.values, facts, stdout: streams.stdout, stdin: streams.stdin, stderr: streams.stderr, log, color });
    if (command !== undefined) {
      await assertStdoutWritten(streams);
      return { kind: 'exit', code: command };
    }
    const plan = await resolveRunPlan(args, facts, log.warn, log.debug, log.progress);
    const outcome = await runWrapper(plan, { stdout: streams.stdout, stderr: streams.stderr, log, jsonOutput: logging.format === 'json' });
    if (plan.dryRun) await assertStdoutWritten(streams);
    // --mask: the child's output went through us. It ran to its end all the same (as it would
    // have, writing to the full disk itself), so its status stands; the loss is said.
    else if (plan.mask && streams.stdoutFailure?.() !== undefined) log.error(new OutputError(streams.stdoutFailure()!, true));
    return outcome;
  } catch (error) {
    const failure = withCommandHint(toRwsError(error), argv);
    log.error(failure);
    if (failure instanceof InternalError && facts.env.RWS_DEBUG_INTERNAL === '1') {
      // Opt-in for developers of this tool: the frames only. The message is left out even here,
      // since messages of built-in errors quote their input (JSON.parse does).
      const frames = String((failure.cause as Error | undefined)?.stack ?? '').split('\n').filter((line) => line.startsWith('    at '));
      streams.stderr.write(`${frames.join('\n')}\n`);
    }
    return { kind: 'exit', code: failure.exitCode };
  }
}

/**
 * A subcommand's usage error points at that subcommand's page (`token --help` lists its action and
 * its own defaults); the top-level page, which the general hint names, describes a run.
 */
function withCommandHint(failure: RwsError, argv: readonly string[]): RwsError {
  const first = argv[0];
  if (!(failure instanceof UsageError) || first === undefined || !Object.hasOwn(COMMAND_OPTIONS, first)) return failure;
  if (failure.hint !== new UsageError('').hint) return failure;
  return new UsageError(failure.message, `see run-with-secrets ${first} --help`);
}

/** Output that went nowhere fails the command: a file it was sent to (a full disk) is incomplete. */
async function assertStdoutWritten(streams: CliStreams): Promise<void> {
  if (!streams.stdoutFailure) return;
  // A file's write fails at once, but its 'error' event comes on the next tick.
  await new Promise((resolve) => setImmediate(resolve));
  const errno = streams.stdoutFailure();
  if (errno !== undefined) throw new OutputError(errno);
}

function earlyLogFormat(argv: readonly string[]): 'text' | 'json' {
  const head = argv.indexOf('--') === -1 ? argv : argv.slice(0, argv.indexOf('--'));
  return head.some((word, index) => word === '--log-format=json' || (word === '--log-format' && head[index + 1] === 'json')) ? 'json' : 'text';
}

/** Dispatches `token generate|revoke`, `keys`, `check`, `login`, `logout` and `whoami`; undefined for a plain run. */
async function runSubcommand(args: ParsedArgs, context: CommandContext): Promise<number | undefined> {
  const [first, second] = args.words;
  if (first === 'token' && second === 'generate' && args.words.length === 2) return (await import('./commands/token.js')).tokenGenerate(context);
  if (first === 'token' && second === 'revoke' && args.words.length === 2) return (await import('./commands/token.js')).tokenRevoke(context);
  if (first === 'keys' && args.words.length === 1) return (await import('./commands/keys.js')).listKeys(context);
  if (first === 'check' && args.words.length === 1) return (await import('./commands/check.js')).check(context);
  if (first === 'fallback' && second === 'clean' && args.words.length === 2) return (await import('./commands/fallback-clean.js')).fallbackClean(context);
  if (LOGIN_COMMANDS.has(first ?? '')) {
    // Never quoted back: a stray word after `login` is most likely the key itself.
    if (args.words.length > 1 || args.command !== undefined) throw new UsageError(`${first} takes no arguments${first === 'login' ? '; the API key is read from stdin (a prompt on a terminal), never from the command line' : ''}`, `see run-with-secrets ${first} --help`);
    if (first === 'login') return (await import('./commands/login.js')).login(context);
    if (first === 'logout') return (await import('./commands/logout.js')).logout(context);
    return (await import('./commands/whoami.js')).whoami(context);
  }
  if (first === 'token' || first === 'keys' || first === 'check' || first === 'fallback') {
    throw new UsageError(`unexpected argument ${JSON.stringify(args.words.slice(first === 'token' || first === 'fallback' ? 2 : 1).join(' ').slice(0, 64))} for ${first}`, `see run-with-secrets ${first} --help`);
  }
  return undefined;
}

/**
 * `login KEY`, `login --key=KEY`, `login -- KEY`: refused before any parser can quote the key
 * back in an error, and said plainly, since the key is now in the process list and shell history.
 */
function refuseKeyOnArgv(argv: readonly string[]): void {
  if (!LOGIN_COMMANDS.has(argv[0] ?? '') || !argv.some(holdsApiKey)) return;
  throw new UsageError('an API key on the command line is refused: other users can see it in the process list, and it stays in shell history', `pipe it in (run-with-secrets login < key-file) or paste it at the prompt; consider that key exposed`);
}

/** Fast path for plain runs; yargs (help, version, completion, careful errors) only when needed. */
async function parseArgv(argv: readonly string[], streams: CliStreams): Promise<ParsedArgs | undefined> {
  if (argv.length === 0) {
    // Nothing to run: the usage, on stderr so that a script's output stays clean, and the status
    // of a usage error, so that `run-with-secrets $UNSET_VAR` does not pass for success.
    const { parseWithYargs } = await import('./yargs-cli.js');
    const help = await parseWithYargs(['--help'], readVersion());
    streams.stderr.write(help.kind === 'output' ? `${help.text}\n` : '');
    throw new UsageError('no command given', 'run-with-secrets [options] -- <command> [args...]');
  }
  if ((argv[0] === 'completion' && argv.length === 1) || COMPLETION_KEY_WORDS.has(argv[0] ?? '')) {
    const { COMPLETION_SCRIPT, completeWords } = await import('./completion.js');
    streams.stdout.write(argv[0] === 'completion' ? COMPLETION_SCRIPT : completeWords(argv.slice(1)).map((word) => `${word}\n`).join(''));
    return undefined;
  }
  const fast = parseFast(argv);
  if (fast.ok) return fast.args;
  const { parseWithYargs } = await import('./yargs-cli.js');
  const slow = await parseWithYargs(argv, readVersion());
  if (slow.kind === 'output') {
    streams.stdout.write(slow.text.endsWith('\n') ? slow.text : `${slow.text}\n`);
    return undefined;
  }
  return slow.args;
}

function readVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** What the bin knows of how the CLI was loaded. */
export interface LoadInfo {
  /** The code cache's state, for `-v` (dist/cli/loader.cjs). */
  codeCache?: () => string;
}

/** Entry point of bin/run-with-secrets.js. */
export async function main(load: LoadInfo = {}): Promise<void> {
  // `run-with-secrets keys | head`: a reader that goes away is not an error of ours. EIO: the
  // terminal went away (an ssh session dropped); the run goes on, and a --watch child stays
  // supervised rather than orphaned by a crash of the wrapper. Any other failure (a full disk)
  // is said once the command is done, never by ending a run whose child is still going.
  let stdoutFailure: string | undefined;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'EIO') stdoutFailure ??= error.code ?? 'unknown error';
  });
  // A diagnostic that cannot be written (cron's log on a full disk: ENOSPC, EFBIG, EDQUOT) has
  // nowhere else to go, and ending the wrapper for it would orphan the child, remove its secrets
  // file under it and replace its exit status with ours.
  process.stderr.on('error', () => undefined);
  process.on('uncaughtException', (error) => {
    process.stderr.write(`${PROGRAM}: error RWS_INTERNAL: internal error (${(error as NodeJS.ErrnoException).code ?? 'no code'})\n`);
    process.exit(EXIT_WRAPPER_FAILURE);
  });
  const outcome = await runCli(process.argv.slice(2), readProcessFacts(), { stdout: process.stdout, stderr: process.stderr, stdin: () => process.stdin, stdoutFailure: () => stdoutFailure }, load);
  if (outcome.kind === 'exit') {
    process.exitCode = outcome.code;
    return;
  }
  if (shouldReraise(outcome.signal)) dieBySignal(outcome.signal, (code) => process.exit(code));
  else process.exit(statusForSignal(outcome.signal));
}
