// `secrets-server init`: the store directory (0700) and the three files the server needs, each
// created only when absent (never overwritten) and 0600.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { generateX25519Identity } from 'age-encryption';
import { identityToRecipient } from '../../sops/index.js';
import type { CliIo } from '../cli.js';
import { EXIT_OK } from '../cli.js';
import { checkStoreDir, resolveJwtSecret, resolveStore } from '../config.js';
import { RwsError } from '../../errors.js';
import { createExclusive, readPrivateFile } from '../store/files.js';
import { printable } from '../../printable.js';
import { shellQuote } from './shell-quote.js';

export async function init(args: Record<string, unknown>, io: CliIo): Promise<number> {
  const paths = resolveStore(args.store as string | undefined, io.env);
  // Paths are the operator's (--store, VANTA_SOPS_FILES_PATH): a control character in one is
  // escaped, never sent raw to the terminal.
  const say = (line: string): void => void io.stdout.write(`${printable(line)}\n`);
  let created: boolean;
  try {
    created = await makeDirectory(paths.dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new RwsError('RWS_STORE_UNWRITABLE', `cannot create the store ${paths.dir}: ${code}`, { hint: 'check the path and the permissions of its parent directory' });
  }
  await checkStoreDir(paths);
  say(created ? `created store ${paths.dir} (0700)` : `kept store ${paths.dir}`);

  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const files: Array<[string, string, string]> = [
    [paths.ageIdentity, 'age identity', `# created by secrets-server init: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`],
    [paths.jwtSecret, 'JWT signing secret', randomBytes(32).toString('hex')],
    [paths.pepper, 'API key pepper', randomBytes(32).toString('hex')],
  ];
  for (const [file, what, content] of files) {
    try {
      await createExclusive(file, content);
      say(`created ${what} ${file} (0600)${file === paths.ageIdentity ? `, recipient ${recipient}` : ''}`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // What is kept must be what serve will take: a file others can read, a link or a FIFO is
      // refused now with serve's own error, not after "Start the server with".
      if (file === paths.jwtSecret) await resolveJwtSecret(paths, {});
      else await readPrivateFile(file);
      say(`kept ${what} ${file}`);
    }
  }
  // The state is made now, so a new store is complete: SQLite in the store, or the schema in
  // PostgreSQL with --database-url (or the variables).
  const existed = await fs.stat(paths.stateDb).then(() => true, () => false);
  const { openCommandState } = await import('./state-args.js');
  const state = await openCommandState(paths, args, io);
  await state.close();
  if (state.kind === 'postgres') say(`state in ${state.location}, schema up to date`);
  else say(existed ? `kept state database ${paths.stateDb}` : `created state database ${paths.stateDb} (0600)`);
  say('');
  say('Start the server with:');
  say(`  export VANTA_SOPS_FILES_PATH=${shellQuote(paths.dir)}`);
  say(`  export SOPS_AGE_KEY_FILE=${shellQuote(paths.ageIdentity)}`);
  say('  secrets-server serve');
  return EXIT_OK;
}

/**
 * Like mkdir -p, with every directory it creates private (0700). Written out because Node 20's
 * recursive mkdir never returns for some paths (e.g. under /proc).
 */
async function makeDirectory(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir, { mode: 0o700 });
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
    await makeDirectory(parent);
    await fs.mkdir(dir, { mode: 0o700 });
    return true;
  }
}
