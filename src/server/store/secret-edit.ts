// One edit of an environment's SOPS file, shared by `secret set|import|rm` and the admin API.
// The file is read, changed and rewritten while the database lock `sops:ENV` is held, so two
// edits (from any process or replica on this store) never lose each other's change, and a holder
// that dies leaves no lock behind. An existing file keeps its data key and recipients; a new file
// is encrypted to the recipients of the identities given (`.sops.yaml` rules are not read).
import { refuseUnprotected } from './unprotected-values.js';
import { RwsError } from '../../errors.js';
import { createSopsFile, identityToRecipient } from '../../sops/index.js';
import type { StateStore } from '../state/state-store.js';
import { stageReplacement } from './files.js';
import { removeLeftoverTemps } from '../../replacement-temps.js';
import type { StorePaths } from './layout.js';
import { readSopsFile } from './sops-store.js';

export interface SecretChange {
  set?: Record<string, string>;
  remove?: string[];
}

export interface EditTarget {
  paths: StorePaths;
  identities: string[];
  environment: string;
}

/**
 * Applies `change` under the environment's lock. `record` runs once the new version is written
 * beside the file and before it replaces it: if recording fails, the file is left as it was.
 */
export async function editEnvironment(state: Pick<StateStore, 'withLock'>, target: EditTarget, change: SecretChange, record: () => Promise<void> = async () => undefined): Promise<void> {
  await state.withLock(`sops:${target.environment}`, async (stillHeld) => {
    // An edit killed between writing its new version and renaming it left that file behind.
    await removeLeftoverTemps(target.paths.secrets(target.environment), () => false, true);
    const staged = await stageReplacement(target.paths.secrets(target.environment), await rewrite(target, change));
    try {
      // A lock the database let go of (its session ended) may be another editor's by now: its
      // edit, made from the file as it was, would be lost under ours. Checked before the change
      // is recorded, and again before the file is replaced (recording takes a while). With
      // PostgreSQL, a holder stopped or paused for over 10 s loses its lock (lock-session.ts), so
      // this is where one continued afterwards fails, changing nothing. The check is the last
      // thing before the rename: only a process stopped between its answer and the rename
      // itself (one system call later) could still replace the file, as no file system lets a
      // rename be fenced by a database's lock.
      await stillHeld();
      await record();
      await stillHeld();
    } catch (error) {
      await staged.discard();
      throw error;
    }
    await staged.commit();
  });
}

async function rewrite(target: EditTarget, change: SecretChange): Promise<string> {
  const current = await readSopsFile(target.paths.secrets(target.environment), target.identities).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const missingName = change.remove?.find((name) => !current?.names.includes(name));
  if (missingName !== undefined) throw new SecretMissingError(target.environment, missingName, current === undefined);
  if (change.set !== undefined) refuseUnprotected({ environment: target.environment, file: target.paths.secrets(target.environment) }, current, change.set);
  if (current !== undefined) return current.update(change);
  return createSopsFile(change.set ?? {}, await Promise.all(target.identities.map(identityToRecipient)));
}

export class SecretMissingError extends RwsError {
  constructor(
    environment: string,
    name: string,
    /** The whole environment is missing, not only the name. */
    readonly noEnvironment: boolean,
  ) {
    // The message is also the admin API's 404 body, so it stays; the hint points where the fix is
    // (`secret list` of a missing environment would only fail again).
    super('RWS_SECRET_MISSING', `environment ${environment} has no secret ${name}`, {
      hint: noEnvironment ? `there is no environment ${environment}: secrets-server status lists the environments of the store` : `see secrets-server secret list ${environment}`,
    });
  }
}
