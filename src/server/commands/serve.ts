// `secrets-server serve`: resolve everything before listening (so a bad setup fails at once),
// print the ready line, and close gracefully on SIGTERM/SIGINT.
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { acquireLock } from '../store/files.js';
import type { StorePaths } from '../store/layout.js';
import { checkStoreDir, resolveIdentities, resolveJwtSecret, resolvePepper, resolveStore } from '../config.js';
import { ServerUsageError } from '../usage-error.js';
import { LocalStateStore } from '../state/legacy/local-state.js';
import { checkListen, type ListenOptions, listen } from '../http/server.js';
import { SopsSecretStore } from '../store/sops-store.js';
import { importTokenKey, TokenAuthority } from '../auth/tokens.js';
import { loadTlsPair, type TlsFiles } from '../http/tls-files.js';
import { ReloadHooks } from '../reload.js';
import { operationOptions } from './serve-options.js';

export async function serve(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const port = args.port as number;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new ServerUsageError(`Expected --port to be an integer from 0 to 65535, got ${String(args.port)}`);
  const certFile = args['tls-cert'] as string | undefined;
  const keyFile = args['tls-key'] as string | undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ServerUsageError('give both --tls-cert and --tls-key, or neither');
  const options: ServeOptions = { host: String(args.host), port, insecureListen: args['insecure-listen'] === true, auditLog: args['audit-log'] as string | undefined };
  Object.assign(options, operationOptions(args, io));
  checkListen(options);
  if (certFile !== undefined && keyFile !== undefined) options.tlsFiles = { certFile, keyFile };
  if (options.tlsFiles !== undefined) options.tls = await loadTlsPair(options.tlsFiles);

  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  // Exact use counts need one writer of the token state: one server per store.
  const release = await acquireLock(paths.stateLog, 0, 'another secrets-server serve');
  try {
    return await serveStore(paths, options, io);
  } finally {
    await release();
  }
}

type ServeOptions = ListenOptions & { auditLog?: string; tlsFiles?: TlsFiles };

async function serveStore(paths: StorePaths, options: ServeOptions, io: CliIo): Promise<number> {
  // SIGHUP runs these; whatever must be reopened or re-read on reload registers here.
  const reloads = new ReloadHooks();
  const stopReloading = io.onHangup?.(() => void reloads.runAll((line) => void io.stderr.write(`${line}\n`)));
  const identities = await resolveIdentities(paths, io.env);
  const tokens = new TokenAuthority(await importTokenKey(await resolveJwtSecret(paths, io.env)));
  const pepper = await resolvePepper(paths);
  const state = await LocalStateStore.open({
    apiKeysFile: paths.apiKeys,
    stateLog: paths.stateLog,
    auditLog: options.auditLog ?? paths.auditLog,
    compact: true,
  });
  const log = (line: string): void => void io.stderr.write(`${line}\n`);
  let server;
  try {
    server = await listen(options, { state, secrets: new SopsSecretStore(paths, identities), tokens, pepper, log });
  } catch (error) {
    await state.close();
    throw error;
  }
  io.stdout.write(`secrets-server listening on ${server.url}\n`);
  if (server.metricsUrl !== undefined) log(`secrets-server: metrics on ${server.metricsUrl}`);
  const { tlsFiles } = options;
  if (tlsFiles !== undefined) reloads.add('TLS certificate and key', async () => server.setTls(await loadTlsPair(tlsFiles)));
  const signal = await io.untilStopped();
  log(`secrets-server: ${signal}, closing`);
  await server.close();
  stopReloading?.();
  return EXIT_OK;
}
