// `secrets-server status`: what this host would serve — where the state is, its schema version,
// and the digest of each environment's file (compare across replicas to see drift). Exit 1 when
// any environment is refused, so that cron or a monitor sees a store this host only partly serves.
import type { CliIo } from '../cli.js';
import { EXIT_FAILURE, EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveIdentities, resolveStore } from '../config.js';
import { SCHEMA_VERSION } from '../state/sql/schema.js';
import { SopsSecretStore } from '../store/sops-store.js';
import { openCommandState } from './state-args.js';
import { printable, printableJson } from '../../printable.js';

export async function status(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  const environments = await new SopsSecretStore(paths, await resolveIdentities(paths, io.env)).versions();
  const state = await openCommandState(paths, args, io);
  let schema: number;
  try {
    schema = await state.schemaVersion();
  } finally {
    await state.close();
  }
  // The report is printed either way; the exit status says whether every environment is served.
  // /healthz stays 200 for a refused file: a load balancer must not drop a replica that serves
  // the others. A script asking this host has no such reason to be told "fine".
  const exit = Object.values(environments).some((version) => 'error' in version) ? EXIT_FAILURE : EXIT_OK;
  const view = { store: paths.dir, state: { kind: state.kind, location: state.location, schema_version: schema, latest_version: SCHEMA_VERSION }, environments };
  if (args.json) {
    io.stdout.write(`${printableJson(view)}\n`);
    return exit;
  }
  // The store's path is the operator's (--store, VANTA_SOPS_FILES_PATH): escaped, never raw.
  io.stdout.write(`store: ${printable(view.store)}\nstate: ${state.kind} ${printable(state.location)}, schema version ${schema}\n`);
  for (const [environment, version] of Object.entries(environments)) io.stdout.write(`environment ${environment}: ${'digest' in version ? version.digest : `refused (${version.error})`}\n`);
  return exit;
}
