// The certificate and key, read and checked as a pair, at start and again on SIGHUP (a renewed
// certificate needs no restart). Failures name the flag, the path and a likely fix; a bad new
// pair on reload keeps the old one.
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { RwsError } from '../../errors.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

export async function loadTlsPair(files: TlsFiles): Promise<TlsPair> {
  const cert = await readTlsFile('--tls-cert', files.certFile);
  const key = await readTlsFile('--tls-key', files.keyFile);
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
  return { cert, key };
}

async function readTlsFile(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = String((error as NodeJS.ErrnoException).code ?? 'error');
    throw new RwsError('RWS_TLS_UNREADABLE', `cannot read ${flag} ${file}: ${code}`, {
      hint: code === 'ENOENT' ? `check the path given to ${flag}` : `check the permissions of ${file} for the user running secrets-server`,
    });
  }
}
