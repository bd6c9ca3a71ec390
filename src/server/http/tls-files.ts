// The certificate and key, read and checked as a pair, at start and again on SIGHUP (a renewed
// certificate needs no restart). Failures name the flag, the path and a likely fix; a bad new
// pair on reload keeps the old one.
import { createSecureContext } from 'node:tls';
import { RwsError } from '../../errors.js';
import { readLocalFile, ReadProblem } from '../../local-file.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** A chain of a dozen certificates is about 20 KiB: anything near this is no PEM pair. */
const MAX_TLS_FILE_BYTES = 1024 * 1024;

export async function loadTlsPair(files: TlsFiles): Promise<TlsPair> {
  const { contents: cert } = await readTlsFile('--tls-cert', files.certFile);
  const { contents: key, mode: keyMode } = await readTlsFile('--tls-key', files.keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const code = String((error as { code?: unknown }).code ?? 'ERR_TLS');
    throw new RwsError('RWS_TLS_INVALID', `--tls-cert ${files.certFile} and --tls-key ${files.keyFile} are not a PEM certificate and its private key (${code})`, {
      hint: /NO_START_LINE|PEM|DECODER|BAD_BASE64|ASN1/.test(code)
        ? 'the certificate file starts with BEGIN CERTIFICATE, the key file with BEGIN PRIVATE KEY: are they swapped or not PEM?'
        : 'the key does not belong to the certificate: give the key the certificate was issued for',
    });
  }
  // The key is the server's identity: anyone who can read it can pass for this server. Checked
  // after the pair, so that swapped files (the certificate is 0644) are named as swapped.
  if ((keyMode & 0o077) !== 0) {
    throw new RwsError('RWS_FILE_ACCESS', `--tls-key ${files.keyFile} is readable by others (mode ${(keyMode & 0o777).toString(8)})`, {
      hint: `chmod 600 ${files.keyFile}, or give secrets-server a copy of its own (0600, owned by the user running it)`,
    });
  }
  return { cert, key };
}

/**
 * Through the wrapper's reader of local files (readLocalFile): links are followed (certbot's live/
 * names are links); a FIFO, device or directory in the file's place is refused without waiting on
 * it (a FIFO once held a thread-pool thread for good on each SIGHUP, and a few of them every file
 * and crypto call of the server: it stopped answering, even SIGTERM); the read is bounded.
 */
async function readTlsFile(flag: string, file: string): Promise<{ contents: Buffer; mode: number }> {
  try {
    const { text, mode } = await readLocalFile(file, { maxBytes: MAX_TLS_FILE_BYTES, allowPipe: false });
    return { contents: Buffer.from(text, 'utf8'), mode: mode ?? 0o777 }; // undefined only for a pipe, refused by allowPipe: false
  } catch (error) {
    if (!(error instanceof ReadProblem)) throw error;
    if (error.kind === 'invalid') {
      throw new RwsError('RWS_TLS_INVALID', `${flag} ${file} is ${error.reason}: no PEM certificate chain or key`, { hint: `check the path given to ${flag}` });
    }
    const code = (error.cause as NodeJS.ErrnoException | undefined)?.code;
    const hint =
      code === 'ENOENT' ? `check the path given to ${flag}`
      : code === undefined ? `give ${flag} the PEM file itself (a link to one is fine), not a directory, pipe or device`
      : `check the permissions of ${file} for the user running secrets-server`;
    throw new RwsError('RWS_TLS_UNREADABLE', `cannot read ${flag} ${file}: ${code ?? error.reason}`, { hint });
  }
}
