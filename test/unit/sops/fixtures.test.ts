// Files written by the real sops (test/fixtures/sops, see SOURCES.md): every one must open, its
// MAC must verify, and any change to a value must be caught.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { openSopsFile, parseAgeIdentities, SopsError } from '../../../src/sops/index.js';
import { unwrapDataKey } from '../../../src/sops/age-stanza.js';
import { computeMac } from '../../../src/sops/mac.js';
import { readMetadata } from '../../../src/sops/metadata.js';
import { walkDocuments } from '../../../src/sops/tree.js';
import { openValue, typed } from '../../../src/sops/values.js';
import { shouldBeEncrypted } from '../../../src/sops/rules.js';
import { parseDocuments, sopsPair } from '../../../src/sops/yaml-doc.js';

const dir = new URL('../../fixtures/sops/', import.meta.url);
const read = (p: string): string => readFileSync(new URL(p, dir), 'utf8');
const ids = (p: string): string[] => parseAgeIdentities(read(p));

const FLUX_KEY = 'flux-kustomize-controller/keys/age.txt';
const FIXTURES = [
  { file: 'sops-age/secret.enc.yaml', key: 'sops-age/key.txt' },
  { file: 'sops-nix/secrets.yaml', key: 'sops-nix/age-keys.txt' },
  { file: 'flux-kustomize-controller/algorithms/age.yaml', key: FLUX_KEY },
  { file: 'flux-kustomize-controller/algorithms/age-pq.yaml', key: 'flux-kustomize-controller/keys/age-pq.txt' },
  { file: 'flux-kustomize-controller/global/secret.yaml', key: 'flux-kustomize-controller/keys/age-global.txt' },
  { file: 'flux-kustomize-controller/patches/merge1.yaml', key: FLUX_KEY },
  { file: 'flux-kustomize-controller/patches/merge2.yaml', key: FLUX_KEY },
];

/** Every leaf of a file as path → decrypted (or plain) text, through the internal modules. */
async function allLeaves(file: string, key: string): Promise<Map<string, string[]>> {
  const docs = parseDocuments(read(file), file);
  const meta = readMetadata(sopsPair(docs[0]!)!.value as never, file);
  const dataKey = await unwrapDataKey(meta.age, ids(key), file);
  const out = new Map<string, string[]>();
  walkDocuments(docs, file, ({ path, node }) => {
    if (node === null) return;
    const v = typed(node, path, file);
    if (v.kind === 'null') return;
    const text = shouldBeEncrypted(meta.rule, path) ? openValue(v.text, path, dataKey, file).plaintext.toString() : v.text;
    out.set(path.join('.'), [...(out.get(path.join('.')) ?? []), text]);
  });
  return out;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SopsError> {
  const error = await p.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(SopsError);
  expect((error as SopsError).code).toBe(code);
  return error as SopsError;
}

describe('fixtures written by sops', () => {
  test.each(FIXTURES)('$file opens and its MAC verifies', async ({ file, key }) => {
    const f = await openSopsFile(read(file), ids(key), { origin: file });
    expect(f.names.length).toBeGreaterThan(0);
    expect(f.names).not.toContain('sops');
  });

  test('sops-age: typed values are returned in the plaintext form sops wrote', async () => {
    const f = await openSopsFile(read('sops-age/secret.enc.yaml'), ids('sops-age/key.txt'));
    expect(f.names).toEqual(['secret', 'string', 'int', 'float', 'boolean']);
    expect(f.skipped).toEqual(['complex']);
    expect(Object.fromEntries(f.decryptAll())).toEqual({ secret: 'this is a secret', string: 'string', int: '7', float: '3.14', boolean: 'True' });
    expect(f.decrypt('secret')).toBe('this is a secret');
    const leaves = await allLeaves('sops-age/secret.enc.yaml', 'sops-age/key.txt');
    expect(leaves.get('complex.value')).toEqual(['this is a secret']);
    expect(leaves.get('complex.array')).toEqual(['one', 'two', 'three']);
  });

  test('sops-nix: nested values and a list are covered', async () => {
    const f = await openSopsFile(read('sops-nix/secrets.yaml'), ids('sops-nix/age-keys.txt'));
    expect(f.names).toEqual(['test_key']);
    expect(f.skipped).toEqual(['a_list', 'nested']);
    expect(f.decrypt('test_key')).toBe('test_value');
    const leaves = await allLeaves('sops-nix/secrets.yaml', 'sops-nix/age-keys.txt');
    expect(leaves.get('nested.test.file')).toEqual(['another value']);
    expect(leaves.get('a_list')).toEqual(['e1', 'e3']);
  });

  test.each([
    ['flux-kustomize-controller/algorithms/age.yaml', FLUX_KEY, 'stringData.key', 'value'],
    ['flux-kustomize-controller/algorithms/age-pq.yaml', 'flux-kustomize-controller/keys/age-pq.txt', 'stringData.key', 'value'],
    ['flux-kustomize-controller/global/secret.yaml', 'flux-kustomize-controller/keys/age-global.txt', 'stringData.key', 'global-value'],
    ['flux-kustomize-controller/patches/merge1.yaml', FLUX_KEY, 'stringData.key', 'merge1'],
    ['flux-kustomize-controller/patches/merge2.yaml', FLUX_KEY, 'stringData.merge2', 'merge2'],
  ])('flux %s: %s = %s; unencrypted fields are served as written', async (file, key, path, value) => {
    expect((await allLeaves(file, key)).get(path)).toEqual([value]);
    const f = await openSopsFile(read(file), ids(key));
    expect(f.decrypt('apiVersion')).toBe('v1');
    expect(f.decrypt('kind')).toBe('Secret');
    expect(f.skipped).toEqual(['metadata', 'stringData']);
  });

  test('the MAC of flux age.yaml is SHA-512 over v1, Secret, age, value (FORMAT.md §4 worked example)', async () => {
    const file = 'flux-kustomize-controller/algorithms/age.yaml';
    const docs = parseDocuments(read(file), file);
    const meta = readMetadata(sopsPair(docs[0]!)!.value as never, file);
    const key = await unwrapDataKey(meta.age, ids(FLUX_KEY), file);
    const expected = createHash('sha512').update('v1Secretagevalue').digest('hex').toUpperCase();
    expect(computeMac(docs, meta, key, file)).toBe(expected);
  });
});

/** Changes one base64 character of the n-th `field:` in the text so that the decoded bytes change. */
function flipField(text: string, field: 'data' | 'iv' | 'tag', n: number): string {
  let seen = -1;
  return text.replace(new RegExp(`(ENC\\[AES256_GCM,data:[^\\]]*\\])`, 'g'), (enc) => {
    seen += 1;
    if (seen !== n) return enc;
    const m = new RegExp(`${field}:([A-Za-z0-9+/]+)`).exec(enc)!;
    const at = m.index + field.length + 1; // first base64 character of the field
    const c = enc[at]!;
    return enc.slice(0, at) + (c === 'A' ? 'B' : 'A') + enc.slice(at + 1);
  });
}

describe('tampering is caught', () => {
  test.each(FIXTURES)('$file: flipping data, iv or tag of any value or of the MAC fails', async ({ file, key }) => {
    const text = read(file);
    const count = text.match(/ENC\[AES256_GCM/g)!.length;
    expect(count).toBeGreaterThan(1);
    for (let n = 0; n < count; n++) {
      for (const field of ['data', 'iv', 'tag'] as const) {
        const changed = flipField(text, field, n);
        expect(changed).not.toBe(text);
        await expectCode(openSopsFile(changed, ids(key), { origin: file }), 'RWS_SOPS_MAC_MISMATCH');
      }
    }
  });

  test.each([
    ['apiVersion: v1', 'apiVersion: v2'],
    ['kind: Secret', 'kind: Secrets'],
    ['  name: age\n', '  name: agf\n'],
    ['lastmodified: "2024-11-12T13:33:42Z"', 'lastmodified: "2024-11-12T13:33:43Z"'],
  ])('flux age.yaml: changing the unencrypted %s fails', async (from, to) => {
    const text = read('flux-kustomize-controller/algorithms/age.yaml');
    expect(text).toContain(from);
    await expectCode(openSopsFile(text.replace(from, to), ids(FLUX_KEY)), 'RWS_SOPS_MAC_MISMATCH');
  });

  test('moving an encrypted value to another key fails (the AAD binds the key path)', async () => {
    const text = read('sops-age/secret.enc.yaml');
    const line = (k: string): string => text.split('\n').find((l) => l.startsWith(`${k}: `))!;
    const swapped = text.replace(line('secret'), line('string').replace('string:', 'secret:')).replace(line('string'), line('secret').replace('secret:', 'string:'));
    await expectCode(openSopsFile(swapped, ids('sops-age/key.txt')), 'RWS_SOPS_MAC_MISMATCH');
  });

  test('removing a list element or a whole value fails', async () => {
    const text = read('sops-nix/secrets.yaml');
    const withoutE3 = text.split('\n').filter((l, i, all) => !(l.startsWith('    - ENC') && all[i - 1]!.startsWith('    - ENC'))).join('\n');
    expect(withoutE3).not.toBe(text);
    await expectCode(openSopsFile(withoutE3, ids('sops-nix/age-keys.txt')), 'RWS_SOPS_MAC_MISMATCH');
    const withoutKey = text.replace(/^test_key: .*\n/m, '');
    await expectCode(openSopsFile(withoutKey, ids('sops-nix/age-keys.txt')), 'RWS_SOPS_MAC_MISMATCH');
  });

  test('a missing MAC is refused', async () => {
    const text = read('sops-age/secret.enc.yaml').replace(/^ {2}mac: .*\n/m, '');
    const e = await expectCode(openSopsFile(text, ids('sops-age/key.txt'), { origin: 'x.yaml' }), 'RWS_SOPS_MAC_MISMATCH');
    expect(e.message).toContain('x.yaml');
  });

  test('reformatting that keeps the values (indent, quoting) still verifies', async () => {
    const text = read('flux-kustomize-controller/algorithms/age.yaml').replace('apiVersion: v1', 'apiVersion: "v1"').replace('kind: Secret', "kind: 'Secret'");
    const f = await openSopsFile(text, ids(FLUX_KEY));
    expect(f.decrypt('kind')).toBe('Secret');
  });
});
