// `secret set` and `secret import` never write a value that would be stored unencrypted: the
// file's sops rule (`unencrypted_suffix`, `encrypted_regex`, …) may leave a name in plain text,
// and an empty value is never encrypted. Such a value would be readable in the file, not
// protected by the MAC, and never served; before, it was written with no warning.
import { promises as fs } from 'node:fs';
import { RwsError } from '../../errors.js';
import { DEFAULT_RULE, ruleLeavingUnencrypted, type SopsFile } from '../../sops/index.js';
import { readSopsFile } from '../store/sops-store.js';
import { ServerUsageError } from '../usage-error.js';

export async function refuseUnprotected(file: string, identities: string[], values: Readonly<Record<string, string>>): Promise<void> {
  const empty = Object.keys(values).find((name) => values[name] === '');
  if (empty !== undefined) {
    throw new ServerUsageError(`the value of ${empty} is empty: sops never encrypts an empty string, so it would not be protected and never served; nothing was written`);
  }
  const current = await existing(file, identities);
  for (const name of Object.keys(values)) {
    const rule = current === undefined ? ruleLeavingUnencrypted(DEFAULT_RULE, name) : current.ruleLeavingUnencrypted(name);
    if (rule === undefined) continue;
    throw new RwsError('RWS_SECRET_UNENCRYPTED', `the sops rule of ${file} (${rule}) leaves ${name} unencrypted: it would be stored in plain text and never served; nothing was written`, {
      hint: 'choose a name the rule encrypts, or change the rule in the file with sops',
    });
  }
}

async function existing(file: string, identities: string[]): Promise<SopsFile | undefined> {
  try {
    await fs.lstat(file);
  } catch {
    return undefined; // a new file gets the default rule
  }
  return readSopsFile(file, identities);
}
