// Files we write open again, byte-exact, and also with a second decryptor written here from
// FORMAT.md alone (age + node:crypto, no code from src/sops).
import { createDecipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Decrypter, armor, generateHybridIdentity, generateIdentity, identityToRecipient } from 'age-encryption';
import { parse } from 'yaml';
import { beforeAll, describe, expect, test } from 'vitest';
import { createSopsFile, openSopsFile, parseAgeIdentities } from '../../../src/sops/index.js';

const HOSTILE: Record<string, string> = {
  QUOTES: `it's "quoted" and 'single'`,
  HASH: 'a # not a comment',
  DOLLAR: '$HOME ${PATH} $(rm -rf /)',
  EQUALS: 'a=b==c',
  BACKSLASH: 'C:\\path\\n\\t',
  NEWLINES: 'line1\nline2\r\nline3\n',
  SPACES: '  leading and trailing  ',
  UNICODE: 'héllo wörld – 日本語 🎉 \u2028\u2029\u0085 zero\u200Bwidth',
  CONTROL: '\u0000\u0001\u007f\t',
  EMPTY: '',
  YAMLISH: '- [a, b]: {c: d} &x *y !tag',
  LOOKS_TYPED: '017',
  BOOLISH: 'True',
  NULLISH: '~',
  LONG: 'x'.repeat(100_000),
  ENC_LOOKALIKE: 'ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]',
};

let identity = '';
let recipient = '';
beforeAll(async () => {
  identity = await generateIdentity();
  recipient = await identityToRecipient(identity);
});

/**
 * A second reader for flat files: JS objects are fine here because the values are strings, and
 * the MAC is rebuilt from FORMAT.md §4 (SHA-512 over the values in file order).
 */
async function independentDecrypt(text: string, id: string): Promise<Map<string, string>> {
  const doc = parse(text) as Record<string, unknown> & { sops: { age: Array<{ enc: string }>; lastmodified: string; mac: string } };
  const d = new Decrypter();
  d.addIdentity(id);
  const key = await d.decrypt(armor.decode(doc.sops.age[0]!.enc));
  const open = (enc: string, aad: string): string => {
    const m = /^ENC\[AES256_GCM,data:(.*),iv:(.*),tag:(.*),type:str\]$/.exec(enc)!;
    const c = createDecipheriv('aes-256-gcm', key, Buffer.from(m[2]!, 'base64'));
    c.setAAD(Buffer.from(aad));
    c.setAuthTag(Buffer.from(m[3]!, 'base64'));
    return Buffer.concat([c.update(Buffer.from(m[1]!, 'base64')), c.final()]).toString('utf8');
  };
  const out = new Map<string, string>();
  const hash = createHash('sha512');
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'sops') continue;
    const value = v === '' || k.endsWith('_unencrypted') ? String(v) : open(String(v), `${k}:`);
    out.set(k, value);
    hash.update(value);
  }
  expect(open(doc.sops.mac, doc.sops.lastmodified)).toBe(hash.digest('hex').toUpperCase());
  return out;
}

describe('createSopsFile', () => {
  test('hostile values round-trip byte-exact through openSopsFile', async () => {
    const text = await createSopsFile(HOSTILE, [recipient]);
    const f = await openSopsFile(text, [identity]);
    expect(f.names).toEqual(Object.keys(HOSTILE));
    for (const [k, v] of Object.entries(HOSTILE)) expect(f.decrypt(k)).toBe(v);
    expect(Object.fromEntries(f.decryptAll())).toEqual(HOSTILE);
  });

  test('and through an independent decryptor, whose MAC agrees', async () => {
    const text = await createSopsFile(HOSTILE, [recipient]);
    expect(Object.fromEntries(await independentDecrypt(text, identity))).toEqual(HOSTILE);
  });

  test('writes the sops layout: 4-space indent, str values, armored age, _unencrypted, no plaintext', async () => {
    const text = await createSopsFile({ API_TOKEN: 'tok-123-secret', EMPTY: '' }, [recipient]);
    expect(text).toMatch(/^API_TOKEN: ENC\[AES256_GCM,data:[^,]+,iv:[^,]{44},tag:[^,]{24},type:str\]$/m);
    expect(text).toContain('EMPTY: ""\n');
    expect(text).toContain(`sops:\n    age:\n        - recipient: ${recipient}\n          enc: |\n`);
    expect(text).toContain('-----BEGIN AGE ENCRYPTED FILE-----');
    expect(text).toMatch(/^ {4}lastmodified: "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"$/m);
    expect(text).toMatch(/^ {4}mac: ENC\[AES256_GCM,.*type:str\]$/m);
    expect(text).toContain('    unencrypted_suffix: _unencrypted\n    version: 3.9.0\n');
    expect(text).not.toContain('tok-123-secret');
  });

  test('names ending in _unencrypted stay readable, as the default rule says, and are in the MAC', async () => {
    const text = await createSopsFile({ HOST_unencrypted: 'db.local', 'true_unencrypted': '017' }, [recipient]);
    expect(text).toContain('HOST_unencrypted: "db.local"');
    const f = await openSopsFile(text, [identity]);
    expect(f.decrypt('HOST_unencrypted')).toBe('db.local');
    expect(f.decrypt('true_unencrypted')).toBe('017');
    await expect(openSopsFile(text.replace('"db.local"', '"db.evil"'), [identity])).rejects.toMatchObject({ code: 'RWS_SOPS_MAC_MISMATCH' });
  });

  test('keys go-yaml would not read as strings are quoted; odd keys round-trip', async () => {
    const values = { 'true': 'a', '123': 'b', '': 'c', 'null': 'd', 'with space': 'e', 'ключ': 'f', __proto__x: 'g', 'a:b': 'h' };
    const text = await createSopsFile(values, [recipient]);
    expect(text).toMatch(/^"true": ENC/m);
    expect(text).toMatch(/^"123": ENC/m);
    const f = await openSopsFile(text, [identity]);
    expect(Object.fromEntries(f.decryptAll())).toEqual(values);
  });

  test('one stanza per recipient; each identity opens the file, post-quantum included', async () => {
    const pq = await generateHybridIdentity();
    const other = await generateIdentity();
    const text = await createSopsFile({ A: 'x' }, [recipient, await identityToRecipient(pq), await identityToRecipient(other)]);
    expect(text.match(/BEGIN AGE ENCRYPTED FILE/g)).toHaveLength(3);
    for (const id of [identity, pq, other]) expect((await openSopsFile(text, [id])).decrypt('A')).toBe('x');
  });

  test('refuses no recipients, a bad recipient, the reserved name sops and lone surrogates', async () => {
    await expect(createSopsFile({ A: 'x' }, [])).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
    await expect(createSopsFile({ A: 'x' }, ['age1nope'])).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
    await expect(createSopsFile({ sops: 'x' }, [recipient])).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
    const e = await createSopsFile({ A: 'bad\uD800s3cr3t' }, [recipient]).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'RWS_SOPS_INVALID' });
    expect((e as Error).message).not.toContain('s3cr3t');
  });

  test('a __proto__ name is an ordinary key and pollutes nothing', async () => {
    const values = JSON.parse('{"__proto__": "p", "constructor": "c", "toString": "t"}') as Record<string, string>;
    const text = await createSopsFile(values, [recipient]);
    const f = await openSopsFile(text, [identity]);
    expect(f.names).toEqual(['__proto__', 'constructor', 'toString']);
    const all = f.decryptAll();
    expect(all.get('__proto__')).toBe('p');
    expect(({} as Record<string, unknown>).p).toBeUndefined();
    expect(Object.getPrototypeOf(all)).toBe(Map.prototype);
  });
});

describe('SopsFile.update', () => {
  test('sets, replaces and removes; unchanged values keep their exact ciphertext', async () => {
    const text = await createSopsFile({ KEEP: 'same', CHANGE: 'old', DROP: 'gone' }, [recipient]);
    const f = await openSopsFile(text, [identity]);
    const next = await f.update({ set: { CHANGE: 'new', ADDED: 'fresh', KEEP: 'same' }, remove: ['DROP', 'NOT_THERE'] });
    const line = (t: string, k: string): string | undefined => t.split('\n').find((l) => l.startsWith(`${k}: `));
    expect(line(next, 'KEEP')).toBe(line(text, 'KEEP'));
    expect(line(next, 'CHANGE')).not.toBe(line(text, 'CHANGE'));
    expect(line(next, 'DROP')).toBeUndefined();
    // Same data key and recipients: the age stanza is untouched.
    expect(next.slice(next.indexOf('-----BEGIN'), next.indexOf('-----END'))).toBe(text.slice(text.indexOf('-----BEGIN'), text.indexOf('-----END')));
    const g = await openSopsFile(next, [identity]);
    expect(g.names).toEqual(['KEEP', 'CHANGE', 'ADDED']);
    expect(Object.fromEntries(g.decryptAll())).toEqual({ KEEP: 'same', CHANGE: 'new', ADDED: 'fresh' });
    expect(Object.fromEntries(await independentDecrypt(next, identity))).toEqual({ KEEP: 'same', CHANGE: 'new', ADDED: 'fresh' });
  });

  test('hostile values survive an update', async () => {
    const f = await openSopsFile(await createSopsFile({ A: 'a' }, [recipient]), [identity]);
    const g = await openSopsFile(await f.update({ set: HOSTILE }), [identity]);
    expect(Object.fromEntries(g.decryptAll())).toEqual({ A: 'a', ...HOSTILE });
  });

  test('the object keeps describing the file it opened', async () => {
    const f = await openSopsFile(await createSopsFile({ A: 'a' }, [recipient]), [identity]);
    await f.update({ set: { A: 'b' } });
    expect(f.decrypt('A')).toBe('a');
  });

  test('refuses changing sops, and a name both set and removed', async () => {
    const f = await openSopsFile(await createSopsFile({ A: 'a' }, [recipient]), [identity]);
    await expect(f.update({ set: { sops: 'x' } })).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
    await expect(f.update({ remove: ['sops'] })).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
    await expect(f.update({ set: { A: 'b' }, remove: ['A'] })).rejects.toMatchObject({ code: 'RWS_SOPS_INVALID' });
  });

  const fixtures = new URL('../../fixtures/sops/', import.meta.url);
  const read = (p: string): string => readFileSync(new URL(p, fixtures), 'utf8');

  test('a sops-written file with nested values, a list and pgp keys keeps them all', async () => {
    const ids = parseAgeIdentities(read('sops-nix/age-keys.txt'));
    const original = read('sops-nix/secrets.yaml');
    const f = await openSopsFile(original, ids);
    const next = await f.update({ set: { new_key: 'new value' } });
    for (const kept of original.split('\n').filter((l) => /ENC\[|BEGIN PGP|fp: /.test(l) && !l.includes('mac:'))) {
      expect(next).toContain(kept); // every ciphertext, stanza and fingerprint is untouched
    }
    expect(next.indexOf('new_key:')).toBeLessThan(next.indexOf('sops:'));
    const g = await openSopsFile(next, ids);
    expect(g.names).toEqual(['test_key', 'new_key']);
    expect(g.skipped).toEqual(['a_list', 'nested']);
    expect(g.decrypt('new_key')).toBe('new value');
  });

  test('a file with encrypted_regex keeps the rule: new top-level values outside it stay plaintext', async () => {
    const ids = parseAgeIdentities(read('flux-kustomize-controller/keys/age.txt'));
    const original = read('flux-kustomize-controller/algorithms/age.yaml');
    const f = await openSopsFile(original, ids);
    const next = await f.update({ set: { kind: 'ConfigMap' } });
    expect(next).toContain('kind: "ConfigMap"');
    expect(next).toContain('\n  name: age\n'); // the file's 2-space indent is kept
    expect((await openSopsFile(next, ids)).decrypt('kind')).toBe('ConfigMap');
    expect(next).toMatch(/^ {2}encrypted_regex: \^\(data\|stringData\)\$$/m);
  });
});
