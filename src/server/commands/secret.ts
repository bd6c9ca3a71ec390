// `secrets-server secret set|import|list|rm`: edits of one environment's SOPS file, each one
// whole-file write (temp file + rename, 0600) under the file's lock (store/secret-edit.ts, shared
// with the admin API). Values come from stdin only.
import { RwsError } from '../../errors.js';
import { assertInjectableName } from '../../names.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveIdentities, resolveStore } from '../config.js';
import { ServerUsageError } from '../usage-error.js';
import { editEnvironment, type SecretChange } from '../store/secret-edit.js';
import { localChange } from '../audit/record.js';
import { openCommandState } from './state-args.js';
import { isValidEnvironment, type StorePaths } from '../store/layout.js';
import { holdsApiKey } from '../../credential-shapes.js';
import { readSopsFile } from '../store/sops-store.js';
import { writeNameList } from './name-list.js';
import { afterCommit } from './after-commit.js';
import { dotenvProblems } from '../../dotenv-lines.js';
import { printable } from '../../printable.js';
import { duplicateName } from '../../json-duplicate-names.js';

const MAX_STDIN_BYTES = 4 * 1024 * 1024;
const ENVIRONMENTS_HINT = 'secrets-server status lists the environments of the store';

interface Target {
  paths: StorePaths;
  identities: string[];
  environment: string;
  args: Record<string, unknown>;
  io: CliIo;
}

async function target(args: Record<string, unknown>, io: CliIo): Promise<Target> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  const environment = String(args.environment);
  if (holdsApiKey(environment)) throw new ServerUsageError('the environment looks like an API key: it would become a file name, shown by status and /healthz', 'name environments with letters, digits, _ and -');
  if (!isValidEnvironment(environment)) {
    throw new ServerUsageError(`environment ${JSON.stringify(environment.slice(0, 64))} is not a valid name`, 'use letters, digits, _ and - (at most 64), not "tokens" or "secrets"');
  }
  await checkStoreDir(paths);
  return { paths, environment, identities: await resolveIdentities(paths, io.env), args, io };
}

/**
 * One edit, recorded as the admin API's edits are: a `secret.set`/`secret.delete` row (names only,
 * client `local`) stored before the file is replaced. Once the file is in place the edit stands,
 * and a failing close only warns (after-commit.ts).
 */
async function edit(t: Target, change: SecretChange, command: string): Promise<void> {
  const state = await openCommandState(t.paths, t.args, t.io);
  try {
    const now = new Date();
    const row = { ...localChange(change.remove ? 'secret.delete' : 'secret.set', null, now, command), environment: t.environment, keys: [...Object.keys(change.set ?? {}), ...(change.remove ?? [])] };
    await editEnvironment(state, t, change, async () => void (await state.commit({ durable: true, audit: () => row }, now)));
  } catch (error) {
    await state.close().catch(() => undefined);
    throw error;
  }
  await afterCommit(t.io, 'closing the state database', () => state.close());
}

async function readStdin(io: CliIo): Promise<string> {
  if (io.stdin.isTTY) throw new ServerUsageError('the value is read from stdin: pipe it in (it is never taken from the command line)', "e.g. printf %s \"$VALUE\" | secrets-server secret set ENV NAME");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > MAX_STDIN_BYTES) throw new ServerUsageError(`stdin is over ${MAX_STDIN_BYTES} bytes`);
    chunks.push(buffer);
  }
  try {
    // Not Buffer#toString, which turns bytes that are not UTF-8 into U+FFFD: a binary secret would
    // be stored changed and reported as set. ignoreBOM keeps a leading U+FEFF as part of the value.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ServerUsageError('stdin is not UTF-8 text; nothing was written', 'a sops value is text: base64-encode a binary secret first (base64 -w0 FILE | secrets-server secret set …)');
  }
}

function checkNames(names: readonly string[], args: Record<string, unknown>): void {
  const allowed = new Set((args['allow-name'] as string[] | undefined) ?? []);
  for (const name of names) assertInjectableName(name, allowed);
}

export async function secretSet(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const name = String(args.name);
  checkNames([name], args);
  const t = await target(args, io);
  // One trailing newline is what `echo` and editors add; it is not part of the value.
  const value = (await readStdin(io)).replace(/\r?\n$/, '');
  if (value === '') throw new ServerUsageError(`stdin was empty: no value for ${name}; nothing was written`);
  if (value.includes('\0')) throw new ServerUsageError(`the value of ${name} contains a NUL byte`);
  await edit(t, { set: { [name]: value } }, 'secrets-server secret set');
  io.stdout.write(`set ${name} in ${t.environment}\n`);
  return EXIT_OK;
}

export async function secretImport(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const t = await target(args, io);
  const text = await readStdin(io);
  const values = args.format === 'json' ? parseJsonSecrets(text) : await parseDotenv(text);
  const names = Object.keys(values);
  if (names.length === 0) throw new ServerUsageError('stdin holds no secrets; nothing was written');
  // Every name is checked before anything is written: one bad name rejects the whole import.
  checkNames(names, args);
  const bad = names.find((name) => values[name]?.includes('\0'));
  if (bad !== undefined) throw new ServerUsageError(`the value of ${bad} contains a NUL byte; nothing was written`);
  const empty = names.find((name) => values[name] === '');
  if (empty !== undefined) throw new ServerUsageError(`the value of ${empty} is empty: sops never encrypts an empty string, so it would not be protected and never served; nothing was written`);
  await edit(t, { set: values }, 'secrets-server secret import');
  io.stdout.write(`imported ${names.length} secret${names.length === 1 ? '' : 's'} into ${t.environment}: ${names.join(', ')}\n`);
  return EXIT_OK;
}

function parseJsonSecrets(text: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ServerUsageError('stdin is not valid JSON; nothing was written');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ServerUsageError('expected a JSON object of NAME: "value"; nothing was written');
  const values: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [name, item] of Object.entries(value)) {
    if (typeof item !== 'string') throw new ServerUsageError(`the value of ${printable(name.slice(0, 64))} is not a string; nothing was written`);
    // `"\ud800"` is valid JSON but not text: stored as UTF-8 it would become U+FFFD.
    if (/\p{Cs}/u.test(item)) throw new ServerUsageError(`the value of ${printable(name.slice(0, 64))} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text; nothing was written`);
    values[name] = item;
  }
  // JSON.parse kept the last value of a name given twice: one of the two would be dropped unsaid.
  // The name is said (names are not secret, and the operator must find it); neither value is.
  // Checked once every value is known to be a string: a name repeated inside an object given as
  // a value (`{"A": {"x": 1, "x": 2}}`) is that value's content, never to be printed.
  const twice = duplicateName(text);
  if (twice !== undefined) throw new ServerUsageError(`stdin names the secret ${printable(twice.slice(0, 64))} twice; keep one value for each name; nothing was written`);
  return values;
}

async function parseDotenv(text: string): Promise<Record<string, string>> {
  const [problem] = dotenvProblems(text, 1);
  if (problem !== undefined) {
    throw new ServerUsageError(`line ${problem.line} of stdin ${problem.why}; nothing was written`, 'write one NAME=value per line, quote a value that holds # or spans lines, and close every quote');
  }
  const { parse } = await import('dotenv');
  const parsed = parse(text) as Record<string, string>;
  const values: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const name of Object.keys(parsed)) values[name] = parsed[name] as string;
  return values;
}

export async function secretList(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const t = await target(args, io);
  const file = await readSopsFile(t.paths.secrets(t.environment), t.identities).catch((error: NodeJS.ErrnoException) => {
    // A typo in ENV is the usual cause: say where the real names are.
    if (error.code === 'ENOENT') throw new RwsError('RWS_ENVIRONMENT_MISSING', `no environment ${t.environment} in ${t.paths.dir}`, { hint: ENVIRONMENTS_HINT });
    throw error;
  });
  writeNameList(file, io);
  return EXIT_OK;
}

export async function secretRemove(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const t = await target(args, io);
  const name = String(args.name);
  await edit(t, { remove: [name] }, 'secrets-server secret rm');
  io.stdout.write(`removed ${name} from ${t.environment}\n`);
  return EXIT_OK;
}
