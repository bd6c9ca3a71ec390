// The data key's age layer (FORMAT.md §6): one armored age file per recipient, holding the raw
// 32-byte data key. Like sops, every stanza is tried with all identities; the recipient string is
// not matched against the identities.
import { ageModule } from './age-module.js';
import { DATA_KEY_BYTES } from './cipher.js';
import { SopsError } from './errors.js';
import { printable } from '../printable.js';
import type { AgeStanza } from './metadata.js';

/** typage's message when no identity fits a file (FORMAT.md §8). */
const NO_MATCH = /no identity matched/i;

/**
 * Each recipient stanza costs an X25519 exchange per identity (about 1.3 ms, on the server's one
 * thread), and neither the sops metadata nor the age header is authenticated before one opens:
 * anyone who can write the file could put 100,000 stanzas in one 16 MiB age blob (2 minutes).
 */
const MAX_RECIPIENT_STANZAS = 256;

/** The `-> ` stanza lines of an age file's header (age spec: the header ends at `---`). */
function headerStanzas(file: Uint8Array): number {
  const text = Buffer.from(file.buffer, file.byteOffset, file.byteLength).toString('latin1');
  const end = text.indexOf('\n---');
  const header = end === -1 ? text : text.slice(0, end);
  let count = 0;
  for (let at = header.indexOf('\n-> '); at !== -1; at = header.indexOf('\n-> ', at + 1)) count += 1;
  return count;
}

export async function unwrapDataKey(stanzas: readonly AgeStanza[], identities: readonly string[], origin: string): Promise<Uint8Array> {
  if (identities.length === 0) {
    throw new SopsError('RWS_SOPS_NO_IDENTITY', `${origin}: no age identity is configured`, { hint: 'set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY' });
  }
  if (stanzas.length === 0) {
    throw new SopsError('RWS_SOPS_NO_IDENTITY', `${origin}: the file has no age recipients`, { hint: 'only age keys are supported (not pgp or cloud KMS)' });
  }
  const age = await ageModule();
  const decrypter = new age.Decrypter();
  identities.forEach((identity, i) => {
    try {
      decrypter.addIdentity(identity);
    } catch {
      throw new SopsError('RWS_SOPS_NO_IDENTITY', `age identity ${i + 1} is malformed`);
    }
  });
  let failure: unknown; // a stanza that matched an identity but did not open
  let malformed = 0; // stanzas whose armor could not be read at all
  const files: Uint8Array[] = [];
  for (const stanza of stanzas) {
    try {
      files.push(age.armor.decode(stanza.enc));
    } catch {
      malformed += 1;
    }
  }
  const recipientStanzas = files.reduce((n, file) => n + headerStanzas(file), 0);
  if (recipientStanzas > MAX_RECIPIENT_STANZAS) {
    throw new SopsError('RWS_SOPS_INVALID', `${origin}: the data key is wrapped for ${recipientStanzas} age recipients; at most ${MAX_RECIPIENT_STANZAS} are tried`, {
      hint: 'a sops file has one recipient per person or host; restore the file from version control',
    });
  }
  for (const file of files) {
    try {
      const key = await decrypter.decrypt(file);
      if (key.length === DATA_KEY_BYTES) return key;
      failure = new Error('the data key is not 32 bytes');
    } catch (e) {
      if (!(e instanceof Error && NO_MATCH.test(e.message))) failure = e;
    }
  }
  if (failure === undefined && malformed < stanzas.length) {
    const recipients = stanzas.map((s) => printable(s.recipient.length > 24 ? `${s.recipient.slice(0, 20)}…` : s.recipient)).join(', ');
    throw new SopsError('RWS_SOPS_NO_IDENTITY', `${origin}: none of the ${identities.length} age identities opens the file (recipients: ${recipients})`, {
      hint: 'use the identity of one of those recipients',
    });
  }
  throw new SopsError('RWS_SOPS_DECRYPT_FAILED', `${origin}: the age-encrypted data key could not be decrypted`, { cause: failure });
}

/** One armored age file for one recipient (FORMAT.md §6 "Encrypt"). */
export async function wrapDataKey(dataKey: Uint8Array, recipient: string): Promise<string> {
  const age = await ageModule();
  const encrypter = new age.Encrypter();
  try {
    encrypter.addRecipient(recipient);
  } catch (cause) {
    throw new SopsError('RWS_SOPS_INVALID', `${recipient} is not an age recipient this writer supports (age1… or age1pq1…)`, { cause });
  }
  return age.armor.encode(await encrypter.encrypt(dataKey));
}
