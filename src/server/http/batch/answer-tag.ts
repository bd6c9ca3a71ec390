// The ETag of a batch answer: an HMAC-SHA256 of exactly what was served (the environment, and
// each name with its value), so a client holding it learns from a 304 that nothing it received
// has changed. Keyed, because a plain hash of a low-entropy value (a PIN, `true`, a port) is
// reversed by trying every candidate; the key never leaves the server. It is derived (HKDF) from
// the token signing secret, which every replica of one store or database already shares, so a
// client moving between replicas keeps its 304s; the label keeps it independent of signing.
import { createHmac, hkdfSync } from 'node:crypto';

const KEY_LABEL = 'run-with-secrets batch etag v1';

export function deriveAnswerTagKey(signingSecret: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', signingSecret, new Uint8Array(0), KEY_LABEL, 32));
}

/**
 * The strong entity tag of `secrets` served from `environment`. Names are taken in sorted order
 * (the order of the JSON object is not part of what a child receives), and every field is length
 * prefixed, so no two different answers share an encoding.
 */
export function answerTag(key: Uint8Array, environment: string, secrets: Readonly<Record<string, string>>): string {
  const hmac = createHmac('sha256', key);
  const field = (text: string): void => {
    const bytes = Buffer.from(text, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hmac.update(length);
    hmac.update(bytes);
  };
  field(environment);
  const names = Object.keys(secrets).sort();
  field(String(names.length));
  for (const name of names) {
    field(name);
    field(secrets[name] as string);
  }
  return `"v1-${hmac.digest('base64url')}"`;
}
