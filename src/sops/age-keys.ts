// age identities: the key file format and where sops finds keys (FORMAT.md §6 "Identities",
// "Key file format"). Only SOPS_AGE_KEY and SOPS_AGE_KEY_FILE are read, additively, as sops does.
import { readLocalFile, ReadProblem } from '../local-file.js';
import { ageModule } from './age-module.js';
import { SopsError } from './errors.js';

// Bech32 upper-case data characters; age writes identities upper case.
const X25519 = /^AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$/;
const HYBRID = /^AGE-SECRET-KEY-PQ-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]+$/;

function noIdentity(message: string, hint?: string): SopsError {
  return new SopsError('RWS_SOPS_NO_IDENTITY', message, hint === undefined ? {} : { hint });
}

/** What is wrong with one token, without repeating it (it may be a key). */
function problem(token: string): string | undefined {
  if (X25519.test(token) || HYBRID.test(token)) return undefined;
  if (token.startsWith('AGE-PLUGIN-')) return 'is an age plugin identity, which is not supported';
  if (token.startsWith('-----BEGIN') || token.startsWith('age-encryption.org')) return 'starts an encrypted key file, which is not supported';
  if (token.startsWith('AGE-SECRET-KEY-')) return 'is a malformed age identity';
  return 'is not an age identity (AGE-SECRET-KEY-1… or AGE-SECRET-KEY-PQ-1…)';
}

function parseLines(text: string, origin: string, split: boolean): string[] {
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const tokens = split ? line.split(/\s+/) : [line];
    for (const token of tokens) {
      const why = problem(token);
      if (why !== undefined) throw noIdentity(`line ${i + 1} of ${origin} ${why}`, 'one key per line; blank lines and lines starting with # are skipped');
      if (!keys.includes(token)) keys.push(token);
    }
  });
  return keys;
}

/** An age key file: one identity per line, blank lines and `#` lines skipped. */
export function parseAgeIdentities(text: string): string[] {
  return parseLines(text, 'the age key file', false);
}

/** An age key file holds a line per identity: a few KiB at most. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

/**
 * Reads a key file that only its owner may read: it is a credential (SECURITY.md). Through the
 * bounded reader of local files: a FIFO in the file's place is refused at once instead of waiting
 * for a writer (`serve` hung before its ready line, silently, for good).
 */
async function readKeyFile(path: string): Promise<string> {
  let file;
  try {
    file = await readLocalFile(path, { maxBytes: MAX_KEY_FILE_BYTES, allowPipe: false });
  } catch (error) {
    if (error instanceof ReadProblem && error.reason === 'not a regular file') {
      throw noIdentity(`SOPS_AGE_KEY_FILE ${path} is not a regular file`, 'give SOPS_AGE_KEY_FILE the key file itself, not a directory, pipe or device');
    }
    if (error instanceof ReadProblem && error.kind === 'invalid') throw noIdentity(`SOPS_AGE_KEY_FILE ${path} is ${error.reason}: no age key file`, 'check SOPS_AGE_KEY_FILE');
    throw noIdentity(`cannot read SOPS_AGE_KEY_FILE ${path}`, 'check the path and its permissions');
  }
  const mode = file.mode ?? 0o777; // undefined only for a pipe, refused by allowPipe: false
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new SopsError('RWS_CREDENTIAL_FILE_MODE', `age key file ${path} is readable by group or others (mode ${(mode & 0o777).toString(8)})`, {
      hint: `chmod 600 ${path}`,
    });
  }
  return file.text;
}

/** Identities from SOPS_AGE_KEY (whitespace or newline separated) and SOPS_AGE_KEY_FILE. */
export async function loadAgeIdentities(env: { SOPS_AGE_KEY?: string; SOPS_AGE_KEY_FILE?: string }): Promise<string[]> {
  const keys: string[] = [];
  if (env.SOPS_AGE_KEY !== undefined && env.SOPS_AGE_KEY.trim() !== '') {
    keys.push(...parseLines(env.SOPS_AGE_KEY, 'SOPS_AGE_KEY', true));
  }
  if (env.SOPS_AGE_KEY_FILE !== undefined && env.SOPS_AGE_KEY_FILE !== '') {
    const path = env.SOPS_AGE_KEY_FILE;
    for (const key of parseLines(await readKeyFile(path), path, false)) if (!keys.includes(key)) keys.push(key);
  }
  return keys;
}

/** The public recipient (age1… or age1pq1…) of an identity. */
export async function identityToRecipient(identity: string): Promise<string> {
  const why = problem(identity);
  if (why !== undefined) throw noIdentity(`the identity ${why}`);
  try {
    const age = await ageModule();
    return await age.identityToRecipient(identity);
  } catch (cause) {
    throw new SopsError('RWS_SOPS_NO_IDENTITY', 'the identity is a malformed age identity', { cause });
  }
}
