// The secrets-server command line. `main` is the only place that touches process.argv, the
// process's streams, its signals and its exit code; `runCli` takes them as parameters so the
// whole CLI runs in tests. Each subcommand lives in commands/ and is loaded only when chosen.
import type { Readable, Writable } from 'node:stream';
import yargs, { type Argv } from 'yargs';
import { RwsError, UsageError } from '../errors.js';
import type { Env } from './config.js';
import { ServerUsageError } from './usage-error.js';
import { GENERAL_HINT, helpHint } from './help-hint.js';
import { integer, once } from './flag-values.js';
import { explainSystemError } from './system-errors.js';
import { explainMissingSchema } from './state/state-errors.js';
import { redactCredentials } from './url-credentials.js';
import { printable } from '../printable.js';
import { packageVersion } from './version.js';
import { nameAndCode } from './error-name.js';

export interface CliIo {
  env: Env;
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  /** Resolves with the signal's name when the server should stop. */
  untilStopped: () => Promise<string>;
  /** Calls `reload` on every SIGHUP until the returned function is called (serve only). */
  onHangup?: (reload: () => void) => () => void;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

type Action = () => Promise<number>;

/**
 * A repeated `--database-url` is a usage error on every command, before anything runs: yargs
 * would make it an array, and which URL was meant is a guess. The message names no URL.
 */
function singleDatabaseUrl(value: unknown): unknown {
  if (Array.isArray(value)) throw new Error('--database-url is given more than once; give it once (better: RWS_DATABASE_URL_FILE, as argv is visible to other users)');
  return value;
}
type Args = Record<string, unknown>;

function commands(io: CliIo, choose: (action: Action) => void): (cli: Argv) => Argv {
  const store = {
    store: { type: 'string', requiresArg: true, coerce: once('store'), description: 'the store directory (default: $VANTA_SOPS_FILES_PATH)' },
    'database-url': { type: 'string', requiresArg: true, coerce: singleDatabaseUrl, description: 'keep the state in PostgreSQL (or RWS_DATABASE_URL, RWS_DATABASE_URL_FILE; prefer those: argv is visible to others); default: SQLite state.db in the store' },
  } as const;
  const allowName = { type: 'string', array: true, requiresArg: true, description: 'let this protected name (e.g. PATH, LD_PRELOAD) through; repeat for several' } as const;
  const environmentArg = { description: 'the environment (its file is ENV.enc.yaml)' } as const;
  const nameArg = { description: 'the secret name, [A-Za-z_][A-Za-z0-9_]*' } as const;
  const on = (load: () => Promise<(args: Args, io: CliIo) => Promise<number>>) => (args: Args) => choose(async () => (await load())(args, io));
  return (cli) =>
    cli
      .command('init', 'create the store, an age identity, a JWT signing secret and an API-key pepper', (y) =>
        y.options(store).example('$0 init --store /srv/vault', 'make the store; prints the environment to start the server with'), on(async () => (await import('./commands/init.js')).init))
      .command('secret', 'manage the secrets of an environment', (y) =>
        y
          .options(store)
          .example('printf %s "$DB_PASSWORD" | $0 secret set production DB_PASSWORD', 'one secret, from stdin')
          .example('$0 secret list production', 'the names, never the values')
          .command('set <environment> <name>', 'set one secret; the value is read from stdin', (z) =>
            z.positional('environment', environmentArg).positional('name', nameArg)
              .option('allow-name', allowName).example('printf %s "$DB_PASSWORD" | $0 secret set production DB_PASSWORD', 'the value never appears on the command line'), on(async () => (await import('./commands/secret.js')).secretSet))
          .command('import <environment>', 'set many secrets from stdin in one write', (z) =>
            z.positional('environment', environmentArg).option('format', { choices: ['dotenv', 'json'], default: 'dotenv', description: 'how stdin is written: a .env file, or a JSON object of NAME: "value"' }).option('allow-name', allowName)
              .example('$0 secret import production < .env', 'all names are checked before anything is written'), on(async () => (await import('./commands/secret.js')).secretImport))
          .command('list <environment>', 'list the names (never the values); marks names the API will never serve', (z) => z.positional('environment', environmentArg).example('$0 secret list production', ''), on(async () => (await import('./commands/secret.js')).secretList))
          .command('rm <environment> <name>', 'remove one secret', (z) => z.positional('environment', environmentArg).positional('name', nameArg).example('$0 secret rm production OLD_TOKEN', ''), on(async () => (await import('./commands/secret.js')).secretRemove))
          .demandCommand(1, 'name a secret subcommand: set, import, list or rm'),
      )
      .command('apikey', 'manage API keys', (y) =>
        y
          .options(store)
          .example("$0 apikey create --name ci --environment production --key-pattern 'DB_*'", 'a read key; printed once')
          .example('$0 apikey revoke ak_0123456789abcdef', 'the key and its tokens stop working')
          .command('create', 'create an API key and print it once', (z) =>
            z
              .option('name', { type: 'string', demandOption: true, requiresArg: true, coerce: once('name'), description: 'who or what uses the key (shown by apikey list)' })
              .option('environment', { type: 'string', array: true, requiresArg: true, description: 'an environment the key may mint tokens for; repeat for several (read keys)' })
              .option('key-pattern', { type: 'string', array: true, requiresArg: true, description: 'a glob of the names the key may grant (*, ?); repeat for several (read keys)' })
              .option('admin', { type: 'boolean', description: 'an admin key: manages keys, tokens and secrets over HTTP, reads the audit trail; never reads a secret' })
              .option('max-ttl', { type: 'number', requiresArg: true, description: 'longest token lifetime in minutes (server maximum 60)' })
              .option('expires-at', { type: 'string', requiresArg: true, coerce: once('expires-at'), description: 'ISO 8601 time after which the key stops working' })
              .option('no-fallback', { type: 'boolean', description: "clients may never keep an offline copy of what this key reads (run-with-secrets --fallback)" })
              .example("$0 apikey create --name ci --environment production --key-pattern 'DB_*' --max-ttl 15", 'prints id: ak_… and key: rws_sk_… once'), on(async () => (await import('./commands/apikey.js')).apikeyCreate))
          .command('list', 'list API keys (never the keys themselves)', (z) => z.option('json', { type: 'boolean', description: 'one JSON object per line' }).example('$0 apikey list --json', ''), on(async () => (await import('./commands/apikey.js')).apikeyList))
          .command('revoke <id>', 'revoke an API key and the tokens it issued', (z) => z.positional('id', { description: 'the ak_… id from apikey list' }).example('$0 apikey revoke ak_0123456789abcdef', ''), on(async () => (await import('./commands/apikey.js')).apikeyRevoke))
          .demandCommand(1, 'name an apikey subcommand: create, list or revoke'),
      )
      .command('db', 'the state database: schema and imports', (y) =>
        y
          .options(store)
          .example('$0 db status', 'where the state is and its schema version')
          .command('migrate', 'apply schema migrations now (servers also apply them at start)', (z) => z.example('RWS_DATABASE_URL_FILE=/run/secrets/db-url $0 db migrate', 'before rolling out a new version to the replicas'), on(async () => (await import('./commands/db.js')).dbMigrate))
          .command('status', 'print where the state is and its schema version', (z) => z.option('json', { type: 'boolean', description: 'one JSON object' }).example('$0 db status --json', ''), on(async () => (await import('./commands/db.js')).dbStatus))
          .command('import', "move a single server's file state (api-keys.json, token-state.log, audit.log) into the database", (z) =>
            z.option('from-store', { type: 'string', demandOption: true, requiresArg: true, coerce: once('from-store'), description: 'the store directory whose files to import (its api-key-pepper must be the same as this store\'s)' })
              .example('RWS_DATABASE_URL_FILE=/run/secrets/db-url $0 db import --from-store /srv/vault', "move one server's files into PostgreSQL, once"), on(async () => (await import('./commands/db.js')).dbImport))
          .demandCommand(1, 'name a db subcommand: migrate, status or import'),
      )
      .command('audit', 'list audit events, newest first', (y) =>
        y
          .options(store)
          .example('$0 audit --api-key ak_0123456789abcdef --since 2030-01-01T00:00:00Z', "one key's events since New Year")
          .example('$0 audit --outcome failure --json --follow', 'stream refusals to a log shipper')
          // The filters are the listing's own (the default subcommand): `audit verify` walks the
          // whole chain, so a filter given to it is an unknown argument, never silently ignored.
          .command('verify', 'walk the hash chain: exit 0 with the count, or 1 naming the first broken row', (z) => z.example('$0 audit verify', ''), on(async () => (await import('./commands/audit.js')).auditVerify))
          .command('$0', false, (z) =>
            z
              .option('api-key', { type: 'string', requiresArg: true, coerce: once('api-key'), description: 'only events of this API key id' })
              .option('event', { type: 'string', requiresArg: true, coerce: once('event'), description: 'only this event (e.g. secret.batch, auth.failure)' })
              .option('outcome', { choices: ['success', 'failure'], coerce: once('outcome'), description: 'only successes or failures' })
              .option('environment', { type: 'string', requiresArg: true, coerce: once('environment'), description: 'only this environment' })
              .option('since', { type: 'string', requiresArg: true, coerce: once('since'), description: 'ISO 8601 time, inclusive' })
              .option('until', { type: 'string', requiresArg: true, coerce: once('until'), description: 'ISO 8601 time, exclusive' })
              .option('limit', { type: 'string', default: 100, requiresArg: true, coerce: integer('limit'), description: 'at most this many events (1 to 10000)' })
              .option('json', { type: 'boolean', description: 'one JSON object per line' })
              .option('follow', { type: 'boolean', description: 'then stream new events as JSON lines until interrupted' }),
            on(async () => (await import('./commands/audit.js')).auditList)),
      )
      .command('status', 'where the state is, its schema version, and the digest of each environment file', (y) =>
        y.options(store).option('json', { type: 'boolean', description: 'one JSON object' }).example('$0 status', 'compare the digests across replicas to see drift')
          .example('$0 status --json > /var/lib/rws/status.json', 'cron: exits 1 while an environment is refused; the report is written all the same')
          .epilogue('Exit status: 0 when every environment is served; 1 when one is refused (its line says refused (CODE), its JSON {"error": CODE}) or the command failed (one line on stderr); 2 on a usage error.'), on(async () => (await import('./commands/status.js')).status))
      .command('serve', 'serve the vault API', (y) =>
        y
          .options(store)
          .option('host', { type: 'string', coerce: once('host'), default: '127.0.0.1', requiresArg: true, description: 'the address to listen on; anything but loopback needs TLS' })
          .option('port', { type: 'string', coerce: integer('port'), default: 8200, requiresArg: true, description: 'the port (0: any free port, printed in the ready line)' })
          .option('tls-cert', { type: 'string', coerce: once('tls-cert'), requiresArg: true, description: 'PEM certificate (chain) for HTTPS; re-read on SIGHUP' })
          .option('tls-key', { type: 'string', coerce: once('tls-key'), requiresArg: true, description: 'PEM private key of --tls-cert; re-read on SIGHUP' })
          .option('audit-log', { type: 'string', coerce: once('audit-log'), requiresArg: true, description: 'also write every audit row to FILE as a JSON line (reopened on SIGHUP, for logrotate; one server per file, locked through FILE.lock)' })
          .option('insecure-listen', { type: 'boolean', description: 'allow plain HTTP on a non-loopback address' })
          .option('max-connections', { type: 'string', coerce: integer('max-connections'), requiresArg: true, description: 'open client connections at most; idle ones are closed first when full (default: 4096, or less when ulimit -n is lower)' })
          .option('headers-timeout', { type: 'string', coerce: integer('headers-timeout'), requiresArg: true, description: 'seconds a client may take to send its request headers, or to start a request on a new connection (default: 10)' })
          .option('request-timeout', { type: 'string', coerce: integer('request-timeout'), requiresArg: true, description: 'seconds a client may take to send a whole request, body included (default: 30)' })
          .option('max-long-polls', { type: 'string', coerce: integer('max-long-polls'), requiresArg: true, description: 'batch requests held by ?wait= at once; more get 503 RWS_SERVER_BUSY (default: three quarters of --max-connections; 0 refuses every ?wait=)' })
          .option('max-long-polls-per-key', { type: 'string', coerce: integer('max-long-polls-per-key'), requiresArg: true, description: 'the same per API key; more get 429 RWS_RATE_LIMITED (default: 1024)' })
          .option('metrics-listen', { type: 'string', coerce: once('metrics-listen'), requiresArg: true, description: 'serve GET /metrics (Prometheus) on this HOST:PORT, e.g. 127.0.0.1:9464' })
          .option('fallback-max-age', { type: 'string', coerce: once('fallback-max-age'), requiresArg: true, description: 'longest a client may use its offline copy of secrets after fetching them (run-with-secrets --fallback): 30m, 24h, 7d; at most 90d (default: 24h)' })
          .option('log-format', { coerce: once('log-format'), choices: ['text', 'json'], default: 'text', description: 'json: one line per request on stdout (time, method, route, status, duration, API key id, client)' })
          .option('console', { type: 'boolean', description: 'serve the web console at /console/ (sign in with an admin key)' })
          .example('$0 serve', 'http://127.0.0.1:8200, store from $VANTA_SOPS_FILES_PATH, state in its state.db')
          .example('$0 serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem', 'HTTPS for a team; kill -HUP reloads a renewed certificate')
          .example('RWS_DATABASE_URL_FILE=/etc/rws/db-url $0 serve', 'a replica: the state in PostgreSQL')
          .example('$0 serve --metrics-listen 127.0.0.1:9464 --log-format json', 'metrics for a local scraper, request log for a shipper')
          .example('$0 serve --console', 'the web console at http://127.0.0.1:8200/console/'), on(async () => (await import('./commands/serve.js')).serve))
      .demandCommand(1, 'name a command')
      .example('$0 init --store ./vault', 'a new store; prints the environment to start with')
      .example('printf %s "$DB_PASSWORD" | $0 secret set production DB_PASSWORD', 'a secret, from stdin')
      .example("$0 apikey create --name ci --environment production --key-pattern 'DB_*'", 'a key for run-with-secrets')
      .example('$0 serve', 'serve the vault API on http://127.0.0.1:8200')
      .epilogue('The vault of run-with-secrets: secrets in SOPS files (age), API keys, short-lived scoped tokens, an audit log. Every command takes -h.')
      .strict()
      .help()
      .alias('h', 'help')
      .version(packageVersion())
      .exitProcess(false)
      .parserConfiguration({ 'camel-case-expansion': false, 'boolean-negation': false });
}

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let action: Action | undefined;
  try {
    const cli = commands(io, (chosen) => (action = chosen))(yargs().scriptName('secrets-server').wrap(100));
    // No arguments at all: the usage page, not an error.
    const words = argv.length === 0 ? ['--help'] : [...argv];
    const output = await new Promise<string>((resolve, reject) => {
      void cli.parse(words, {}, (error: Error | undefined, _args: unknown, text: string) => (error ? reject(new ServerUsageError(error.message.replace(/\s*\n\s*/g, ' '))) : resolve(text)));
    });
    if (action === undefined) {
      io.stdout.write(output.endsWith('\n') || output === '' ? output : `${output}\n`);
      return EXIT_OK;
    }
    return await action();
  } catch (raw) {
    const error = raw instanceof UsageError && raw.hint === GENERAL_HINT ? new ServerUsageError(raw.message, helpHint(argv)) : raw;
    reportError(io.stderr, error, argv);
    return error instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
  }
}

/**
 * One line, in the wrapper's form: `secrets-server: error CODE: message (hint: …)`. A URL's
 * password in it is masked, whether yargs echoed an argument or a message quoted a value. So is
 * every control character: a message may quote an argument, a path or an environment variable
 * (`--since`, `--store`, `apikey revoke ID`), whose ESC or newline reached the terminal raw.
 */
function reportError(stderr: Writable, raw: unknown, argv: readonly string[]): void {
  const error = raw instanceof RwsError ? raw : (explainSystemError(raw) ?? explainMissingSchema(raw) ?? raw);
  if (error instanceof RwsError) {
    stderr.write(printable(redactCredentials(`secrets-server: error ${error.code}: ${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}`, argv)) + '\n');
    return;
  }
  stderr.write(`secrets-server: error RWS_INTERNAL: internal error (${nameAndCode(error, 'unknown')}) (hint: please report this with the command line, not the secrets)\n`);
}

export async function main(): Promise<void> {
  ignoreClosedPipes();
  const untilStopped = () =>
    new Promise<string>((resolve) => {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve(signal));
    });
  const onHangup = (reload: () => void) => {
    process.on('SIGHUP', reload);
    return () => void process.off('SIGHUP', reload);
  };
  // node-postgres reads NODE_PG_FORCE_NATIVE as it loads and then connects through libpq, which
  // is sent none of our statement limits (or, without pg-native, fails to load at all). Taken out
  // before anything loads it, lock threads included (they copy this environment); the command
  // still sees it, and names it as ignored (time-limits.ts).
  const env = { ...process.env };
  delete process.env.NODE_PG_FORCE_NATIVE;
  process.exitCode = await runCli(process.argv.slice(2), { env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, untilStopped, onHangup });
}

/** `secrets-server apikey list | head`: a reader that goes away is not a crash. */
export function ignoreClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
    });
  }
}
