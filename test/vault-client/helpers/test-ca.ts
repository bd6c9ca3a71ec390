// A throwaway CA and a server certificate it signed (for 127.0.0.1), made with the openssl CLI.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const openssl = (args: string[]) => promisify(execFile)('openssl', args);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export interface TestCa {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

export async function makeCa(dir: string, name: string): Promise<string> {
  const cert = path.join(dir, `${name}.pem`);
  await openssl(['req', '-x509', ...EC, '-keyout', path.join(dir, `${name}.key`), '-out', cert, '-days', '1', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  return cert;
}

export async function makeTestCa(dir: string): Promise<TestCa> {
  const caCert = await makeCa(dir, 'test-ca');
  const serverKey = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const serverCert = path.join(dir, 'server.pem');
  const ext = path.join(dir, 'server.ext');
  await writeFile(ext, 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await openssl(['req', ...EC, '-keyout', serverKey, '-out', csr, '-subj', '/CN=vault-test']);
  await openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', path.join(dir, 'test-ca.key'), '-CAcreateserial', '-out', serverCert, '-days', '1', '-extfile', ext]);
  return { caCert, serverCert, serverKey };
}
