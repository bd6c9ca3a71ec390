// `logout [--vault-url URL] [--profile NAME] [--all]`: forgets stored keys, offline. The key stays
// valid at the vault (revoking it is the admin's `secrets-server apikey revoke ID`), so say so.
import type { StoredLogin } from '../../config/credential-store.js';
import { UsageError } from '../../errors.js';
import { resolveVaultContext } from '../../config/resolve.js';
import type { CommandContext } from './context.js';
import { loginTarget } from './login-target.js';
import { redactCredentials } from '../output.js';

export async function logout(context: CommandContext): Promise<number> {
  const { values, facts, log } = context;
  const { credentialsPath, findLogin, readLogins, removeLogins, updateLogins } = await import('../../config/credential-store.js');
  if (values.all === true) {
    if (values['vault-url'] !== undefined || values.profile !== undefined) throw new UsageError('--all removes every stored key; drop --vault-url and --profile, or drop --all');
    const path = credentialsPath(facts.env);
    if (path === undefined) throw new UsageError('neither XDG_CONFIG_HOME nor HOME is set', 'set HOME');
    // Removed unread: --all must work on a file we would refuse to read (the way out of a bad one).
    await removeLogins(path, facts.uid);
    context.stdout.write(`removed every stored key (${path}); the keys stay valid at their vaults until revoked there\n`);
    return 0;
  }
  const target = await loginTarget(await resolveVaultContext(values, facts, log.warn, log.debug), facts);
  // Nothing to forget: no lock, and no directory made for it. The write narrows an open one.
  if (findLogin(await readLogins(target.path, facts.uid, true), target.url, target.profile) === undefined) {
    context.stdout.write(`no stored key for ${target.url}, profile ${target.profile}\n`);
    return 0;
  }
  let removed: StoredLogin | undefined;
  await updateLogins(target.path, facts.uid, (logins) => {
    removed = findLogin(logins, target.url, target.profile);
    return logins.filter((entry) => entry !== removed);
  });
  if (removed === undefined) {
    context.stdout.write(`no stored key for ${target.url}, profile ${target.profile}\n`);
    return 0;
  }
  // The key id is what the vault said at login, as login and whoami print it: through the redaction.
  context.stdout.write(`${redactCredentials(`removed the stored key ${removed.key_id} for ${target.url}, profile ${target.profile}; it stays valid at the vault until revoked there (secrets-server apikey revoke ${removed.key_id})`)}\n`);
  return 0;
}
