// `secrets-server serve`: resolve everything before listening (so a bad setup fails at once),
// print the ready line, reopen the audit file on SIGHUP, and close gracefully on SIGTERM/SIGINT.
// Any number of servers may serve one store or one database: the database serialises them.
import { readFile } from 'node:fs/promises';
import { AuditFileSink } from '../audit/file-sink.js';
import { RefusalFolder } from '../audit/refusal-folder.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveIdentities, resolveJwtSecret, resolvePepper, resolveStore } from '../config.js';
import { ServerUsageError } from '../usage-error.js';
import { checkListen, type ListenOptions, listen } from '../http/server.js';
import { SopsSecretStore } from '../store/sops-store.js';
import { SecretsAdmin } from '../store/secrets-admin.js';
import { importTokenKey, TokenAuthority } from '../auth/tokens.js';
import { RollbackGuard } from '../state/rollback-guard.js';
import { openCommandState } from './state-args.js';

const PRUNE_EVERY_MS = 5 * 60_000;

export async function serve(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const port = args.port as number;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new ServerUsageError(`Expected --port to be an integer from 0 to 65535, got ${String(args.port)}`);
  const certFile = args['tls-cert'] as string | undefined;
  const keyFile = args['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ServerUsageError('give both --tls-cert and --tls-key, or neither');
  const options: ListenOptions = { host: String(args.host), port, insecureListen: args['insecure-listen'] === true };
  checkListen(options);
  if (certFile !== undefined && keyFile !== undefined) options.tls = { cert: await readFile(certFile), key: await readFile(keyFile) };

  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  const identities = await resolveIdentities(paths, io.env);
  const tokens = new TokenAuthority(await importTokenKey(await resolveJwtSecret(paths, io.env)));
  const pepper = await resolvePepper(paths);
  const auditLog = args['audit-log'] as string | undefined;
  const sink = auditLog === undefined ? undefined : AuditFileSink.open(auditLog);
  const log = (line: string): void => void io.stderr.write(`${line}\n`);
  let state;
  try {
    state = await openCommandState(paths, args, io, { cache: true, beforeCommit: sink ? (rows) => sink.write(rows) : undefined });
  } catch (error) {
    sink?.close();
    throw error;
  }
  const refusals = new RefusalFolder(
    (record) => state.commit({ audit: () => record }, new Date()),
    () => log('secrets-server: the folded 429 audit row could not be written (RWS_STATE_UNAVAILABLE)'),
  );
  const guard = new RollbackGuard(state, paths.stateSeen, log);
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
    const secrets = new SopsSecretStore(paths, identities);
    const secretsAdmin = new SecretsAdmin(paths, identities, secrets, state);
    server = await listen(options, { state, refusals, secrets, secretsAdmin, tokens, pepper, log });
  } catch (error) {
    clearInterval(prune);
    await guard.stop();
    await refusals.close();
    await state.close();
    sink?.close();
    throw error;
  }
  const onHangup = (): void => {
    try {
      sink?.reopen();
      log('secrets-server: SIGHUP, audit log reopened');
    } catch {
      log('secrets-server: SIGHUP, the audit log could not be reopened; still writing the old file (RWS_AUDIT_UNAVAILABLE)');
    }
  };
  process.on('SIGHUP', onHangup);
  io.stdout.write(`secrets-server listening on ${server.url}\n`);
  const signal = await io.untilStopped();
  log(`secrets-server: ${signal}, closing`);
  clearInterval(prune);
  await server.close(async () => guard.stop());
  process.off('SIGHUP', onHangup);
  sink?.close();
  return EXIT_OK;
}
