// The secrets-server command line. `main` is the only place that touches process.argv, the
// process's streams, its signals and its exit code; `runCli` takes them as parameters so the
// whole CLI runs in tests. Each subcommand lives in commands/ and is loaded only when chosen.
import type { Readable, Writable } from 'node:stream';
import yargs, { type Argv } from 'yargs';
import { RwsError, UsageError } from '../errors.js';
import type { Env } from './config.js';
import { ServerUsageError } from './usage-error.js';

export interface CliIo {
  env: Env;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  /** Resolves with the signal's name when the server should stop. */
  untilStopped: () => Promise<string>;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

type Action = () => Promise<number>;
type Args = Record<string, unknown>;

function commands(io: CliIo, choose: (action: Action) => void): (cli: Argv) => Argv {
  const store = {
    store: { type: 'string', requiresArg: true, description: 'store directory (default: $VANTA_SOPS_FILES_PATH)' },
    'database-url': { type: 'string', requiresArg: true, description: 'keep the state in PostgreSQL (or RWS_DATABASE_URL, RWS_DATABASE_URL_FILE); default: SQLite state.db in the store' },
  } as const;
  const on = (load: () => Promise<(args: Args, io: CliIo) => Promise<number>>) => (args: Args) => choose(async () => (await load())(args, io));
  return (cli) =>
    cli
      .command('init', 'create the store, an age identity, a JWT signing secret and an API-key pepper', (y) => y.options(store), on(async () => (await import('./commands/init.js')).init))
      .command('secret', 'manage the secrets of an environment', (y) =>
        y
          .options(store)
          .command('set <environment> <name>', 'set one secret; the value is read from stdin', (z) => z.option('allow-name', { type: 'string', array: true, description: 'let a protected name through' }), on(async () => (await import('./commands/secret.js')).secretSet))
          .command('import <environment>', 'set many secrets from stdin in one write', (z) =>
            z.option('format', { choices: ['dotenv', 'json'], default: 'dotenv' }).option('allow-name', { type: 'string', array: true, description: 'let a protected name through' }), on(async () => (await import('./commands/secret.js')).secretImport))
          .command('list <environment>', 'list the names (never the values)', (z) => z, on(async () => (await import('./commands/secret.js')).secretList))
          .command('rm <environment> <name>', 'remove one secret', (z) => z, on(async () => (await import('./commands/secret.js')).secretRemove))
          .demandCommand(1, 'name a secret subcommand'),
      )
      .command('apikey', 'manage API keys', (y) =>
        y
          .options(store)
          .command('create', 'create an API key and print it once', (z) =>
            z
              .option('name', { type: 'string', demandOption: true, requiresArg: true })
              .option('environment', { type: 'string', array: true, requiresArg: true, description: 'an environment it may read (read keys)' })
              .option('key-pattern', { type: 'string', array: true, requiresArg: true, description: 'a glob of names it may read (read keys)' })
              .option('admin', { type: 'boolean', description: 'an admin key: manages keys, tokens and secrets over HTTP, reads the audit trail; never reads a secret' })
              .option('max-ttl', { type: 'number', requiresArg: true, description: 'longest token lifetime in minutes (server maximum 60)' })
              .option('expires-at', { type: 'string', requiresArg: true, description: 'ISO 8601 time after which the key stops working' }), on(async () => (await import('./commands/apikey.js')).apikeyCreate))
          .command('list', 'list API keys (never the keys themselves)', (z) => z.option('json', { type: 'boolean', description: 'one JSON object per line' }), on(async () => (await import('./commands/apikey.js')).apikeyList))
          .command('revoke <id>', 'revoke an API key and the tokens it issued', (z) => z, on(async () => (await import('./commands/apikey.js')).apikeyRevoke))
          .demandCommand(1, 'name an apikey subcommand'),
      )
      .command('db', 'the state database: schema and imports', (y) =>
        y
          .options(store)
          .command('migrate', 'apply schema migrations now (servers also apply them at start)', (z) => z, on(async () => (await import('./commands/db.js')).dbMigrate))
          .command('status', 'print where the state is and its schema version', (z) => z.option('json', { type: 'boolean', description: 'one JSON object' }), on(async () => (await import('./commands/db.js')).dbStatus))
          .command('import', "move a single server's file state (api-keys.json, token-state.log, audit.log) into the database", (z) =>
            z.option('from-store', { type: 'string', demandOption: true, requiresArg: true, description: 'the store directory whose files to import' }), on(async () => (await import('./commands/db.js')).dbImport))
          .demandCommand(1, 'name a db subcommand'),
      )
      .command('audit', 'list audit events, newest first', (y) =>
        y
          .options(store)
          .option('api-key', { type: 'string', requiresArg: true, description: 'only events of this API key id' })
          .option('event', { type: 'string', requiresArg: true, description: 'only this event (e.g. secret.batch, auth.failure)' })
          .option('outcome', { choices: ['success', 'failure'], description: 'only successes or failures' })
          .option('environment', { type: 'string', requiresArg: true, description: 'only this environment' })
          .option('since', { type: 'string', requiresArg: true, description: 'ISO 8601 time, inclusive' })
          .option('until', { type: 'string', requiresArg: true, description: 'ISO 8601 time, exclusive' })
          .option('limit', { type: 'number', default: 100, requiresArg: true, description: 'at most this many events (1 to 10000)' })
          .option('json', { type: 'boolean', description: 'one JSON object per line' })
          .option('follow', { type: 'boolean', description: 'then stream new events as JSON lines until interrupted' })
          .command('verify', 'walk the hash chain: exit 0 with the count, or 1 naming the first broken row', (z) => z, on(async () => (await import('./commands/audit.js')).auditVerify))
          .command('$0', false, (z) => z, on(async () => (await import('./commands/audit.js')).auditList)),
      )
      .command('status', 'where the state is, its schema version, and the digest of each environment file', (y) =>
        y.options(store).option('json', { type: 'boolean', description: 'one JSON object' }), on(async () => (await import('./commands/status.js')).status))
      .command('serve', 'serve the vault API', (y) =>
        y
          .options(store)
          .option('host', { type: 'string', default: '127.0.0.1', requiresArg: true })
          .option('port', { type: 'number', default: 8200, requiresArg: true })
          .option('tls-cert', { type: 'string', requiresArg: true })
          .option('tls-key', { type: 'string', requiresArg: true })
          .option('audit-log', { type: 'string', requiresArg: true, description: 'also write every audit row to FILE as a JSON line (reopened on SIGHUP, for logrotate)' })
          .option('insecure-listen', { type: 'boolean', description: 'allow plain HTTP on a non-loopback address' }), on(async () => (await import('./commands/serve.js')).serve))
      .demandCommand(1, 'name a command')
      .strict()
      .help()
      .version(false)
      .exitProcess(false)
      .parserConfiguration({ 'camel-case-expansion': false, 'boolean-negation': false });
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let action: Action | undefined;
  try {
    const cli = commands(io, (chosen) => (action = chosen))(yargs().scriptName('secrets-server').wrap(100));
    const output = await new Promise<string>((resolve, reject) => {
      void cli.parse([...argv], {}, (error: Error | undefined, _args: unknown, text: string) => (error ? reject(new ServerUsageError(error.message, 'see secrets-server --help')) : resolve(text)));
    });
    if (action === undefined) {
      io.stdout.write(output.endsWith('\n') || output === '' ? output : `${output}\n`);
      return EXIT_OK;
    }
    return await action();
  } catch (error) {
    reportError(io.stderr, error);
    return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

function reportError(stderr: Writable, error: unknown): void {
  if (error instanceof RwsError) {
    stderr.write(`secrets-server: ${error.message} (${error.code})\n`);
    if (error.hint) stderr.write(`  hint: ${error.hint}\n`);
    return;
  }
  // Unknown errors: name and code only; their message might hold data.
  const code = (error as { code?: unknown } | undefined)?.code;
  stderr.write(`secrets-server: internal error (${error instanceof Error ? error.name : 'unknown'}${typeof code === 'string' ? ` ${code}` : ''})\n`);
}

export async function main(): Promise<void> {
  ignoreClosedPipes();
  const untilStopped = () =>
    new Promise<string>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal));
    });
  process.exitCode = await runCli(process.argv.slice(2), { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, untilStopped });
}

/** `secrets-server apikey list | head`: a reader that goes away is not a crash. */
export function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
}
