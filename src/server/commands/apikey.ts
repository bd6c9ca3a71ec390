// `secrets-server apikey create|list|revoke`. The key is printed once by `create` and stored
// nowhere: only its HMAC under the pepper is kept.
import { RwsError } from '../../errors.js';
import { isValidPattern } from '../../glob.js';
import { holdsApiKey } from '../../credential-shapes.js';
import { createApiKey, isValidKeyName } from '../auth/api-keys.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolvePepper, resolveStore } from '../config.js';
import { ServerUsageError } from '../usage-error.js';
import { isValidEnvironment, type StorePaths } from '../store/layout.js';
import { localChange } from '../audit/record.js';
import type { SqlStateStore } from '../state/sql/sql-state-store.js';
import { RollbackGuard } from '../state/rollback-guard.js';
import { openCommandState } from './state-args.js';
import { afterCommit } from './after-commit.js';
import { SERVER_MAX_TTL_MINUTES } from '../auth/tokens.js';
import { parseIsoTime } from '../iso-time.js';
import { publicApiKey } from '../auth/api-key-view.js';
import { printable, printableJson } from '../../printable.js';

async function openState(args: Record<string, unknown>, io: CliIo): Promise<{ paths: StorePaths; state: SqlStateStore }> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  await checkStoreDir(paths);
  return { paths, state: await openCommandState(paths, args, io) };
}

/**
 * A revocation is what a restored backup would undo: the command records the trail's head it
 * committed, as servers do, so a later rollback is seen even if no server ran in between.
 */
async function rememberHead(state: SqlStateStore, paths: StorePaths, io: CliIo): Promise<void> {
  await new RollbackGuard(state, paths.stateSeen, (line) => void io.stderr.write(`${line}\n`)).check();
}

/**
 * One key change between two records of the head. The first is the check: a state-seen.json
 * others can read, a disk too full to write it, a rolled-back database all stop the command
 * while nothing is changed yet. Once `change` has committed, the change stands: `report` prints
 * its result, and the second record and the close can only warn (after-commit.ts).
 */
async function changeKeys<T>(args: Record<string, unknown>, io: CliIo, change: (state: SqlStateStore, paths: StorePaths) => Promise<T>, report: (result: T) => void): Promise<void> {
  const { paths, state } = await openState(args, io);
  let result: T;
  try {
    await rememberHead(state, paths, io);
    result = await change(state, paths);
  } catch (error) {
    await state.close().catch(() => undefined);
    throw error;
  }
  report(result);
  await afterCommit(io, `recording the audit head in ${paths.stateSeen}`, () => rememberHead(state, paths, io));
  await afterCommit(io, 'closing the state database', () => state.close());
}

export async function apikeyCreate(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const name = String(args.name);
  const admin = args.admin === true;
  const environments = [...new Set((args.environment as string[] | undefined) ?? [])];
  const keyPatterns = [...new Set((args['key-pattern'] as string[] | undefined) ?? [])];
  const maxTtl = args['max-ttl'] as number | undefined;
  const given = [['--name', name] as const, ...environments.map((value) => ['--environment', value] as const), ...keyPatterns.map((value) => ['--key-pattern', value] as const)];
  const pasted = given.find(([, value]) => holdsApiKey(value));
  if (pasted !== undefined) throw new ServerUsageError(`${pasted[0]} looks like an API key: it would be stored, and shown by apikey list and the console`, 'give a name, environments and globs; keep API keys in your secret manager');
  if (!isValidKeyName(name)) throw new ServerUsageError('--name must be 1 to 128 characters without control characters');
  // An admin key reads no secret: grants on it would suggest a limit that does not exist.
  if (admin && (environments.length > 0 || keyPatterns.length > 0 || maxTtl !== undefined)) {
    throw new ServerUsageError('an --admin key takes no --environment, --key-pattern or --max-ttl: it manages, and reads no secret');
  }
  if (!admin && (environments.length === 0 || keyPatterns.length === 0)) throw new ServerUsageError('give --environment and --key-pattern (or --admin for an admin key)');
  const bad = environments.find((environment) => !isValidEnvironment(environment));
  if (bad !== undefined) throw new ServerUsageError(`--environment ${JSON.stringify(bad.slice(0, 64))} is not a valid environment name`);
  const badPattern = keyPatterns.find((pattern) => !isValidPattern(pattern));
  if (badPattern !== undefined) throw new ServerUsageError(`--key-pattern ${JSON.stringify(badPattern.slice(0, 64))} is not a glob of letters, digits, _, * and ?`);
  if (maxTtl !== undefined && !(Number.isSafeInteger(maxTtl) && maxTtl >= 1 && maxTtl <= SERVER_MAX_TTL_MINUTES)) {
    throw new ServerUsageError(`Expected --max-ttl to be an integer from 1 to ${SERVER_MAX_TTL_MINUTES} minutes, got ${String(args['max-ttl'])}`);
  }
  const now = new Date();
  let expiresAt: Date | null = null;
  if (args['expires-at'] !== undefined) {
    const text = String(args['expires-at']);
    expiresAt = parseIsoTime(text) ?? null;
    if (expiresAt === null) throw new ServerUsageError(`Expected --expires-at to be an ISO 8601 time such as 2030-01-31T00:00:00Z, got ${text.slice(0, 64)}`);
    if (expiresAt <= now) throw new ServerUsageError('--expires-at is in the past');
  }
  await changeKeys(
    args,
    io,
    async (state, paths) => createApiKey(state, await resolvePepper(paths), { name, environments, keyPatterns, maxTtlMinutes: maxTtl ?? null, expiresAt, admin, fallback: args['no-fallback'] !== true }, now),
    ({ id, key }) => {
      io.stdout.write(`id: ${id}\nkey: ${key}\n`);
      io.stderr.write('The key is shown this once and is not stored; keep it in your secret manager now.\n');
    },
  );
  return EXIT_OK;
}

export async function apikeyList(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const { state } = await openState(args, io);
  try {
    for (const key of await state.listApiKeys(new Date())) {
      const view = publicApiKey(key);
      if (args.json) io.stdout.write(`${printableJson(view)}\n`);
      else {
        // Every field escaped, the name above all: a row may hold what no command would write.
        // The name is free text (an admin key chooses it over HTTP), so it is quoted: a read key
        // named `admin`, or `ci  revoked=2026-01-01…`, must not pass for the fields after it.
        const line =
          `${view.id}  ${JSON.stringify(view.name)}  ${view.admin ? 'admin  ' : ''}${view.fallback ? '' : 'no-fallback  '}environments=${view.environments.join(',')}  key_patterns=${view.key_patterns.join(',')}  max_ttl=${view.max_ttl_minutes ?? SERVER_MAX_TTL_MINUTES}m  ` +
          `created=${view.created_at}  expires=${view.expires_at ?? 'never'}  last_used=${view.last_used_at ?? 'never'}  revoked=${view.revoked_at ?? 'no'}  live_tokens=${view.live_tokens}` +
          // Last, so that the fields before it read as they always have.
          (view.grants_intact ? '' : '  REFUSED: grants changed outside secrets-server (revoke it)');
        io.stdout.write(`${printable(line)}\n`);
      }
    }
  } finally {
    await state.close();
  }
  return EXIT_OK;
}

export async function apikeyRevoke(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const id = String(args.id);
  await changeKeys(
    args,
    io,
    async (state) => {
      const now = new Date();
      if (!(await state.revokeApiKey(id, now, localChange('apikey.revoke', id, now, 'secrets-server apikey revoke')))) throw new RwsError('RWS_APIKEY_MISSING', `no API key ${id.slice(0, 64)}`, { hint: 'see secrets-server apikey list' });
    },
    () => void io.stdout.write(`revoked ${id} (its tokens stop working too)\n`),
  );
  return EXIT_OK;
}
