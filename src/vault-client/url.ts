// The vault URL is checked before any connection is made: a credential must never travel in
// clear text to another machine, and never sit inside the URL itself.
import { VaultError } from './errors.js';

export interface VaultUrl {
  /** scheme://host:port, safe to print (no credentials, no path). */
  origin: string;
  /** The path prefix under which the API lives ('' or '/something', no trailing slash). */
  prefix: string;
  secure: boolean;
}

const IPV4_LOOPBACK = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
/** ::1, and IPv4-mapped 127.x.y.z as the URL parser normalises it (::ffff:7fxx:yyzz). */
const IPV6_LOOPBACK = /^\[(::1|::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4})\]$/;

export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || IPV4_LOOPBACK.test(hostname) || IPV6_LOOPBACK.test(hostname);
}

export function parseVaultUrl(raw: string, insecureHttp: boolean): VaultUrl {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not echoed: a mistyped URL is sometimes a pasted credential.
    throw invalidUrl('the vault URL is not a valid URL', 'give it as https://HOST[:PORT][/PREFIX] with --vault-url or RWS_VAULT_URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw invalidUrl(`the vault URL must use https:// (or http:// on loopback), got ${JSON.stringify(url.protocol.slice(0, 16))}`, 'fix --vault-url or RWS_VAULT_URL');
  }
  if (url.username !== '' || url.password !== '') {
    throw new VaultError(
      'RWS_VAULT_INSECURE_URL',
      `the vault URL for ${url.origin} holds a user name or password`,
      'remove user:password@ from the URL; the API key belongs in RWS_API_KEY or RWS_API_KEY_FILE',
    );
  }
  if (url.search !== '' || url.hash !== '') {
    throw invalidUrl(`the vault URL for ${url.origin} has a query or fragment`, 'give only https://HOST[:PORT][/PREFIX]');
  }
  if (url.protocol === 'http:' && !insecureHttp && !isLoopbackHost(url.hostname)) {
    throw new VaultError(
      'RWS_VAULT_INSECURE_URL',
      `refusing to send credentials over plain http:// to ${url.origin}`,
      'use https:// (with --ca-file for a private CA), or pass --insecure-http if the network path is trusted',
    );
  }
  return { origin: url.origin, prefix: url.pathname.replace(/\/+$/, ''), secure: url.protocol === 'https:' };
}

function invalidUrl(message: string, hint: string): VaultError {
  return new VaultError('RWS_VAULT_INVALID_URL', message, hint);
}
