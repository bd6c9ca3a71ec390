// `secrets-server serve`: resolve everything before listening (so a bad setup fails at once),
// print the ready line, reload on SIGHUP (the TLS pair, the audit file), and close gracefully on
// SIGTERM/SIGINT. Any number of servers may serve one store or one database: the database
// serialises them. Not one --audit-log file: its appends are not, so the sink locks it.
import { AuditFileSink } from '../audit/file-sink.js';
import { RefusalFolder } from '../audit/refusal-folder.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveIdentities, resolveJwtSecret, resolvePepper, resolveStore } from '../config.js';
import { ServerUsageError } from '../usage-error.js';
import type { AppDeps } from '../http/app.js';
import { checkListen, type ListenOptions, listen } from '../http/server.js';
import { SopsSecretStore } from '../store/sops-store.js';
import { SecretsAdmin } from '../store/secrets-admin.js';
import { importTokenKey, TokenAuthority } from '../auth/tokens.js';
import { RollbackGuard } from '../state/rollback-guard.js';
import { auditLogOutage, fullLine, OutageLog } from '../state/outage-log.js';
import { AuditSinkError } from '../state/state-errors.js';
import { loadTlsPair, type TlsFiles } from '../http/tls-files.js';
import { ReloadHooks } from '../reload.js';
import { deriveAnswerTagKey } from '../http/batch/answer-tag.js';
import { operationOptions } from './serve-options.js';
import { fallbackMaxAge } from './fallback-option.js';
import { openCommandState } from './state-args.js';

const PRUNE_EVERY_MS = 5 * 60_000;

type ServeOptions = ListenOptions & { tlsFiles?: TlsFiles };

export async function serve(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const port = args.port as number;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new ServerUsageError(`Expected --port to be an integer from 0 to 65535, got ${String(args.port)}`);
  const certFile = args['tls-cert'] as string | undefined;
  const keyFile = args['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ServerUsageError('give both --tls-cert and --tls-key, or neither');
  const options: ServeOptions = { host: String(args.host), port, insecureListen: args['insecure-listen'] === true };
  Object.assign(options, operationOptions(args, io));
  const fallbackMaxAgeSeconds = fallbackMaxAge(args);
  if (certFile !== undefined && keyFile !== undefined) options.tlsFiles = { certFile, keyFile };
  if (options.tlsFiles !== undefined) options.tls = await loadTlsPair(options.tlsFiles);
  // After the pair is loaded: checked before it, HTTPS on any address but loopback was refused as
  // "plain HTTP", and only --insecure-listen let it start.
  checkListen(options);

  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  // SIGHUP runs these; whatever must be reopened or re-read on reload registers here.
  const reloads = new ReloadHooks();
  const stopReloading = io.onHangup?.(() => void reloads.runAll((line) => void io.stderr.write(`${line}\n`)));
  try {
    return await serveStore(paths, options, args, io, reloads, fallbackMaxAgeSeconds);
  } finally {
    stopReloading?.();
  }
}

async function serveStore(paths: ReturnType<typeof resolveStore>, options: ServeOptions, args: Record<string, unknown>, io: CliIo, reloads: ReloadHooks, fallbackMaxAgeSeconds: number): Promise<number> {
  const identities = await resolveIdentities(paths, io.env);
  const signingSecret = await resolveJwtSecret(paths, io.env);
  const tokens = new TokenAuthority(await importTokenKey(signingSecret));
  const answerTagKey = deriveAnswerTagKey(signingSecret);
  const pepper = await resolvePepper(paths);
  const auditLog = args['audit-log'] as string | undefined;
  const sink = auditLog === undefined ? undefined : AuditFileSink.open(auditLog);
  const log = (line: string): void => void io.stderr.write(`${line}\n`);
  let state;
  try {
    state = await openCommandState(paths, args, io, {
      cache: true,
      serving: true,
      beforeCommit: sink ? (rows) => sink.write(rows) : undefined,
      onAlteredKey: (error) => log(fullLine(error)),
    });
  } catch (error) {
    sink?.close();
    throw error;
  }
  const outage = new OutageLog(log);
  const auditOutage = new OutageLog(log, undefined, auditLogOutage(auditLog ?? '--audit-log'));
  const refusals = new RefusalFolder(
    async (record) => {
      await state.commit({ audit: () => record }, new Date());
      outage.answered();
      auditOutage.answered();
    },
    // Once per client and minute in an outage: counted with the refused requests instead.
    (error) => {
      if (OutageLog.covers(error)) outage.refused(error, 'row');
      else if (error instanceof AuditSinkError) auditOutage.refused(error, 'row');
      else log(`secrets-server: the folded 429 audit row could not be written (${describeCode(error)})`);
    },
  );
  const guard = new RollbackGuard(state, paths.stateSeen, log, outage);
  try {
    await guard.start();
  } catch (error) {
    await state.close();
    sink?.close();
    throw error;
  }
  const prune = setInterval(() => void state.pruneTokens(new Date()).catch(() => undefined), PRUNE_EVERY_MS);
  prune.unref();
  let server;
  try {
    const secrets = new SopsSecretStore(paths, identities, Date.now, log);
    const secretsAdmin = new SecretsAdmin(paths, identities, secrets, state);
    const deps: AppDeps = { state, refusals, secrets, secretsAdmin, tokens, pepper, answerTagKey, log, outage, auditOutage, fallbackMaxAgeSeconds };
    // The console's code is loaded only when asked for: a server without --console has none of it.
    if (args.console === true) deps.console = (await import('../console/console.js')).createConsole(deps);
    server = await listen(options, deps);
  } catch (error) {
    clearInterval(prune);
    await guard.stop();
    await refusals.close();
    await state.close();
    sink?.close();
    throw error;
  }
  // Listened for before the line is out: a supervisor (or a test) that signals as soon as it reads
  // it found the handler not yet there when this process was preempted right after the write, and
  // the signal's default action ended it without its close (the guard's last sync, the log).
  const stopped = io.untilStopped();
  io.stdout.write(`secrets-server listening on ${server.url}\n`);
  if (server.metricsUrl !== undefined) log(`secrets-server: metrics on ${server.metricsUrl}`);
  if (args.console === true) log(`secrets-server: console on ${server.url}/console/`);
  if (sink !== undefined) reloads.add('audit log', () => sink.reopen(), 'reopened');
  const { tlsFiles } = options;
  if (tlsFiles !== undefined) reloads.add('TLS certificate and key', async () => server.setTls(await loadTlsPair(tlsFiles)));
  const signal = await stopped;
  log(`secrets-server: ${signal}, closing`);
  clearInterval(prune);
  await server.close(async () => guard.stop());
  sink?.close();
  outage.stopping();
  auditOutage.stopping();
  return EXIT_OK;
}

/** Only a code: an unknown error's message might hold data. */
function describeCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}
