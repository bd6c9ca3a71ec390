// Where the server's secrets come from: the store directory, the age identities, the JWT
// signing secret and the API-key pepper. Environment variables are read here only, from the
// `env` passed in; flags win over variables, variables over the files `init` made.
import { promises as fs } from 'node:fs';
import { RwsError } from '../errors.js';
import { loadAgeIdentities, parseAgeIdentities } from '../sops/index.js';
import { readPrivateFile } from './store/files.js';
import { ServerUsageError } from './usage-error.js';
import { storePaths, type StorePaths } from './store/layout.js';
import { unreadableFile } from './store/owner.js';

export type Env = Readonly<Record<string, string | undefined>>;

const MIN_SECRET_BYTES = 32;

export function resolveStore(flag: string | undefined, env: Env): StorePaths {
  const dir = flag ?? env.VANTA_SOPS_FILES_PATH;
  if (!dir) throw new ServerUsageError('no store directory: pass --store DIR or set VANTA_SOPS_FILES_PATH', 'run secrets-server init --store DIR first');
  return storePaths(dir);
}

/** Checks the store directory is a directory only its owner can enter. */
export async function checkStoreDir(paths: StorePaths): Promise<void> {
  const stat = await fs.lstat(paths.dir).catch(() => undefined);
  if (stat === undefined) {
    // A typo in --store is likelier than a store never made: `init` alone would make an empty one.
    throw new RwsError('RWS_STORE_MISSING', `store directory ${paths.dir} does not exist`, { hint: `check --store / VANTA_SOPS_FILES_PATH; a new store is made with secrets-server init --store ${paths.dir}` });
  }
  // Said as what it is: "does not exist, run init" sent `init` itself round in a circle.
  if (stat.isSymbolicLink()) {
    throw new RwsError('RWS_STORE_INVALID', `store directory ${paths.dir} is a symbolic link, which secrets-server never follows`, { hint: `give --store / VANTA_SOPS_FILES_PATH the real path (realpath ${paths.dir})` });
  }
  if (!stat.isDirectory()) {
    throw new RwsError('RWS_STORE_INVALID', `store directory ${paths.dir} is not a directory`, { hint: 'check --store / VANTA_SOPS_FILES_PATH; a new store is made with secrets-server init --store NEW_DIR' });
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new RwsError('RWS_STORE_INVALID', `store directory ${paths.dir} is open to others (mode ${(stat.mode & 0o777).toString(8)})`, { hint: `chmod 700 ${paths.dir}` });
  }
  // 0700 lets no one else in: said as such, where it read "cannot open …/age-identity.txt:
  // permission denied" and left the operator to guess whose the directory is.
  const me = process.geteuid?.();
  if (me !== undefined && me !== 0 && stat.uid !== me) {
    throw new RwsError('RWS_STORE_INVALID', `store directory ${paths.dir} belongs to uid ${stat.uid} and this process runs as uid ${me}`, {
      hint: `run secrets-server as the store's owner, or give it the store (chown -R ${me} ${paths.dir})`,
    });
  }
}

/** As sops: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE; else the identity `init` put in the store. */
export async function resolveIdentities(paths: StorePaths, env: Env): Promise<string[]> {
  if (env.SOPS_AGE_KEY || env.SOPS_AGE_KEY_FILE) {
    return loadAgeIdentities({ SOPS_AGE_KEY: env.SOPS_AGE_KEY, SOPS_AGE_KEY_FILE: env.SOPS_AGE_KEY_FILE });
  }
  const identities = parseAgeIdentities(await readStoreFile(paths.ageIdentity, 'age identity'));
  if (identities.length === 0) throw new RwsError('RWS_STORE_INVALID', `${paths.ageIdentity} holds no age identity`, {
      hint: 'put back its AGE-SECRET-KEY-1… line (from a backup), or set SOPS_AGE_KEY_FILE to the identity the files are encrypted to',
    });
  return identities;
}

/** VANTA_JWT_SECRET_KEY's UTF-8 bytes, else the store's jwt-secret file; at least 32 bytes. */
export async function resolveJwtSecret(paths: StorePaths, env: Env): Promise<Uint8Array> {
  const fromEnv = env.VANTA_JWT_SECRET_KEY;
  const bytes = new TextEncoder().encode(fromEnv ?? (await readStoreFile(paths.jwtSecret, 'JWT signing secret')));
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new RwsError('RWS_JWT_SECRET_WEAK', `the JWT signing secret${fromEnv === undefined ? ` in ${paths.jwtSecret}` : ' in VANTA_JWT_SECRET_KEY'} is ${bytes.length} bytes; at least ${MIN_SECRET_BYTES} are required`, {
      hint: 'use a random value, e.g. openssl rand -hex 32',
    });
  }
  return bytes;
}

export async function resolvePepper(paths: StorePaths): Promise<Uint8Array> {
  return new TextEncoder().encode(await readStoreFile(paths.pepper, 'API key pepper'));
}

async function readStoreFile(file: string, what: string): Promise<string> {
  try {
    return await readPrivateFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new RwsError('RWS_STORE_MISSING', `no ${what} at ${file}`, { hint: 'run secrets-server init --store DIR' });
    }
    if (code === 'EACCES' || code === 'EPERM') throw await unreadableFile(file, error as NodeJS.ErrnoException);
    throw error;
  }
}
