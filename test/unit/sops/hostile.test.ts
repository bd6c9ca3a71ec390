// Hostile and broken input: every failure is a SopsError with a stable code, names the file or
// key path, never carries a value, and never hangs.
import { createHash } from 'node:crypto';
import { armor, Encrypter, generateIdentity, identityToRecipient } from 'age-encryption';
import { beforeAll, describe, expect, test } from 'vitest';
import { createSopsFile, openSopsFile, SopsError, type SopsFile } from '../../../src/sops/index.js';
import { unwrapDataKey } from '../../../src/sops/age-stanza.js';
import { aadOf, encryptEnc, formatEnc } from '../../../src/sops/cipher.js';
import { computeMac, encryptMac } from '../../../src/sops/mac.js';
import { readMetadata } from '../../../src/sops/metadata.js';
import { parseDocuments, sopsPair } from '../../../src/sops/yaml-doc.js';

const SECRET = 's3cr3t-VALUE-never-shown';
let identity = '';
let base = ''; // a valid file: A (secret), B, C
let dataKey: Uint8Array = new Uint8Array();

beforeAll(async () => {
  identity = await generateIdentity();
  base = await createSopsFile({ A: SECRET, B: 'bee', C: 'sea' }, [await identityToRecipient(identity)]);
  const docs = parseDocuments(base, 't');
  dataKey = await unwrapDataKey(readMetadata(sopsPair(docs[0]!)!.value as never, 't').age, [identity], 't');
});

const sopsBlock = (): string => base.slice(base.indexOf('sops:'));
const enc = (value: string, path: string[], type: 'str' | 'int' = 'str'): string =>
  formatEnc(encryptEnc(dataKey, Buffer.from(value), aadOf(path), type));

/** Recomputes the MAC of a hand-made file with the data key (lastmodified unchanged). */
function resign(text: string): string {
  const docs = parseDocuments(text, 't');
  const meta = readMetadata(sopsPair(docs[0]!)!.value as never, 't');
  const mac = encryptMac(computeMac(docs, meta, dataKey, 't'), dataKey, meta.lastModified);
  return text.replace(/^( *)mac: .*$/gm, `$1mac: ${mac}`);
}

async function failure(text: string, ids: string[] = [identity]): Promise<SopsError> {
  const e = await openSopsFile(text, ids, { origin: 'hostile.yaml' }).then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(SopsError);
  const error = e as SopsError;
  expect(error.message).not.toContain(SECRET);
  expect(error.hint ?? '').not.toContain(SECRET);
  return error;
}

describe('identities', () => {
  test('no identity, or only the wrong one, is RWS_SOPS_NO_IDENTITY', async () => {
    expect((await failure(base, [])).code).toBe('RWS_SOPS_NO_IDENTITY');
    const e = await failure(base, [await generateIdentity()]);
    expect(e.code).toBe('RWS_SOPS_NO_IDENTITY');
    expect(e.message).toContain('hostile.yaml');
    expect(e.message).not.toMatch(/AGE-SECRET-KEY/);
  });

  test('the right identity among wrong ones is found', async () => {
    const f = await openSopsFile(base, [await generateIdentity(), identity]);
    expect(f.decrypt('A')).toBe(SECRET);
  });

  test('a malformed identity is refused without being echoed', async () => {
    const e = await failure(base, ['AGE-SECRET-KEY-1MALFORMED']);
    expect(e.code).toBe('RWS_SOPS_NO_IDENTITY');
    expect(e.message).not.toContain('MALFORMED');
  });

  test('a damaged age payload for a matching identity is RWS_SOPS_DECRYPT_FAILED', async () => {
    const lines = base.split('\n');
    const end = lines.findIndex((l) => l.includes('-----END AGE'));
    const last = lines[end - 1]!;
    const i = last.length - 8; // inside the payload, before any padding
    lines[end - 1] = last.slice(0, i) + (last[i] === 'A' ? 'B' : 'A') + last.slice(i + 1);
    expect((await failure(lines.join('\n'))).code).toBe('RWS_SOPS_DECRYPT_FAILED');
  });

  test('thousands of age recipient stanzas are refused before any is tried (1.3 ms each)', async () => {
    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(await generateIdentity()));
    const file = Buffer.from(await encrypter.encrypt(new Uint8Array(32)));
    // One stanza, repeated in the header of one age file: nothing authenticates the header first.
    const text = file.toString('latin1');
    const start = text.indexOf('\n-> ') + 1;
    const end = text.indexOf('\n---') + 1;
    const header = text.slice(0, start) + text.slice(start, end).repeat(2_000) + text.slice(end);
    const enc = armor.encode(new Uint8Array(Buffer.from(header, 'latin1'))).trimEnd().split('\n').map((line) => `              ${line}`).join('\n');
    const hostile = base.replace('    age:\n', `    age:\n        - recipient: age1x\n          enc: |\n${enc}\n`);
    const started = Date.now();
    const e = await failure(hostile);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toContain('2001 age recipients');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('a recipient and a rule written without a key are shown with their control characters escaped', async () => {
    const retitle = '\\e]0;owned\\a\\nFAKE';
    const e = await failure(base.replace(/- recipient: \S+/, `- recipient: "${retitle}"`), [await generateIdentity()]);
    expect(e.code).toBe('RWS_SOPS_NO_IDENTITY');
    expect(e.message).toContain('(recipients: \\u001b]0;owned\\u0007\\u000aFAKE)');
    // mac_only_encrypted is unset, so a changed suffix only changes which names count as plain.
    const f = await openSopsFile(base.replace(/unencrypted_suffix: .*/, `unencrypted_suffix: "${retitle}"`), [identity]);
    expect(f.ruleLeavingUnencrypted('x\u001b]0;owned\u0007\nFAKE')).toBe('unencrypted_suffix: \\u001b]0;owned\\u0007\\u000aFAKE');
  });

  test('a file with only non-age keys (pgp) says so', async () => {
    const text = base.replace(/ {4}age:\n(?: {8}.*\n| {10}.*\n| {12}.*\n)+/, '    pgp: []\n');
    expect(text).not.toContain('recipient');
    const e = await failure(text);
    expect(e.code).toBe('RWS_SOPS_NO_IDENTITY');
    expect(e.message).toContain('no age recipients');
  });
});

describe('broken YAML and structure', () => {
  test.each([
    ['an empty file', ''],
    ['only a comment', '# nothing\n'],
    ['garbage bytes', '\u0000\u0001\u00ff{{{'],
    ['an unclosed flow map', '{a: b'],
    ['a bad indent', 'a:\n  b: 1\n c: 2\n'],
    ['a top-level list', '- a\n- b\n'],
    ['a top-level scalar', 'just a string\n'],
    ['a top-level null', 'null\n'],
    ['no sops metadata', 'A: b\n'],
    ['sops metadata that is a scalar', 'A: b\nsops: 5\n'],
    ['sops metadata without lastmodified', 'A: b\nsops:\n    age: []\n'],
    ['sops.age that is not a list', 'A: b\nsops:\n    age: x\n    lastmodified: "2024-01-01T00:00:00Z"\n'],
  ])('%s is RWS_SOPS_INVALID', async (_what, text) => {
    expect((await failure(text)).code).toBe('RWS_SOPS_INVALID');
  });

  test('every truncation of a valid file fails cleanly, or opens with the same values', async () => {
    let failures = 0;
    for (let cut = 0; cut < base.length - 1; cut += 37) {
      const text = base.slice(0, cut);
      const opened = await openSopsFile(text, [identity]).catch(() => undefined);
      if (opened !== undefined) {
        // Only a cut in the unauthenticated tail of the metadata (version, suffix) can still open.
        expect(cut).toBeGreaterThan(base.indexOf('    mac:'));
        expect(Object.fromEntries(opened.decryptAll())).toEqual({ A: SECRET, B: 'bee', C: 'sea' });
        continue;
      }
      const e = await failure(text);
      expect(['RWS_SOPS_INVALID', 'RWS_SOPS_MAC_MISMATCH', 'RWS_SOPS_NO_IDENTITY', 'RWS_SOPS_DECRYPT_FAILED']).toContain(e.code);
      failures += 1;
    }
    expect(failures).toBeGreaterThan(20);
  });

  test.each([
    ['at top level', (b: string) => b.replace(/^B: /m, 'A: ')],
    ['quoted and plain spellings', (b: string) => b.replace(/^B: /m, '"A": ')],
    ['nested', (b: string) => `N:\n    x: 1\n    x: 2\n${b}`],
  ])('duplicate keys %s are refused', async (_what, change) => {
    const e = await failure(change(base));
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/duplicate key/);
  });

  test.each([
    ['an int key', '1: x\n'],
    ['a bool key', 'true: x\n'],
    ['a null key', '~: x\n'],
    ['a timestamp key', '2024-01-01: x\n'],
    ['a list key', '? [a]\n: x\n'],
    ['a nested int key', 'N:\n    2: x\n'],
  ])('%s is refused (sops: only string keys)', async (_what, prefix) => {
    const e = await failure(prefix + base);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/not a string/);
  });

  test('the same keys quoted are strings and fine', async () => {
    const f = await openSopsFile(resign(`"1": ${enc('one', ['1'])}\n'true': ${enc('yes', ['true'])}\n${base}`), [identity]);
    expect(f.decrypt('true')).toBe('yes');
    expect(f.decrypt('1')).toBe('one');
  });

  test('an alias bomb is refused quickly instead of expanded', async () => {
    const lines = ['l0: &l0 [a, a, a, a, a, a, a, a, a, a]'];
    for (let i = 1; i < 12; i++) lines.push(`l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(', ')}]`);
    const started = Date.now();
    const e = await failure(`${lines.join('\n')}\n${base}`);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test.each([
    ['compact block lists', (n: number) => `D:\n  ${'- '.repeat(n)}x\n`],
    ['block maps', (n: number) => `D:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')} x\n`],
    ['flow maps', (n: number) => `D: ${'{a: '.repeat(n)}x${'}'.repeat(n)}\n`],
  ])('%s nested 5000 deep are RWS_SOPS_INVALID, not a stack overflow (RWS_INTERNAL)', async (_what, nest) => {
    expect((await failure(nest(5_000) + base)).code).toBe('RWS_SOPS_INVALID');
  });

  test('4 MiB of tiny nodes is refused before it is parsed (the yaml package took 40 s and 2 GB)', async () => {
    const started = Date.now();
    const e = await failure(`X: [${'a,'.repeat(2 * 1024 * 1024)}a]\n${base}`);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/too large to parse/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('4 MiB anchored under *_unencrypted and aliased 1,000 times is refused before it is hashed 1,000 times', async () => {
    const started = Date.now();
    const e = await failure(`BIG_unencrypted: &a ${'x'.repeat(4 * 1024 * 1024)}\nL_unencrypted: [${Array(1_000).fill('*a').join(', ')}]\n${base}`);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/more than 64 MiB of keys and values \(after alias expansion\)/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('a recursive alias is refused', async () => {
    expect((await failure(`R: &r [*r]\n${base}`)).code).toBe('RWS_SOPS_INVALID');
  });

  test('unsupported metadata is refused with a reason', async () => {
    const withRule = (rule: string): string => base.replace('    unencrypted_suffix: _unencrypted\n', rule);
    expect((await failure(withRule('    encrypted_comment_regex: sops\n'))).message).toMatch(/not supported/);
    expect((await failure(withRule('    unencrypted_suffix: _u\n    encrypted_suffix: _e\n'))).message).toMatch(/more than one encryption rule/);
    expect((await failure(withRule('    encrypted_regex: (?i)x\n'))).code).toBe('RWS_SOPS_INVALID');
    const groups = base.replace('    age:\n', '    key_groups:\n        - age: []\n        - age: []\n    age:\n');
    expect((await failure(groups)).message).toMatch(/Shamir/);
  });
});

describe('broken values', () => {
  test.each([
    ['an unknown type', (b: string) => b.replace(/(^A: ENC\[.*)type:str\]/m, '$1type:secret]')],
    ['a truncated ENC', (b: string) => b.replace(/^(A: ENC\[AES256_GCM,data:[^,]*),.*$/m, '$1]')],
    ['non-base64 data', (b: string) => b.replace(/^(A: ENC\[AES256_GCM,data:)[^,]{2}/m, '$1**')],
    ['a plaintext where the rule wants ENC', (b: string) => b.replace(/^A: .*$/m, 'A: plain text')],
    ['a plain int where the rule wants ENC', (b: string) => b.replace(/^A: .*$/m, 'A: 42')],
    ['a nested list item that is not ENC', (b: string) => `L:\n    - not encrypted\n${b}`],
  ])('%s is RWS_SOPS_INVALID and names the key path', async (_what, change) => {
    const text = change(base);
    expect(text).not.toBe(base);
    const e = await failure(text);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/value at (A|L)\b/);
  });

  test('an int-typed value that does not parse as an int is refused', async () => {
    const text = base.replace(/^A: .*$/m, `A: ${enc('seven', ['A'], 'int')}`);
    const e = await failure(text);
    expect(e.code).toBe('RWS_SOPS_INVALID');
    expect(e.message).toMatch(/value at A is an int value that is not a decimal int64/);
  });

  test('null values are skipped by the MAC and listed as skipped, never served', async () => {
    const f = await openSopsFile(`N: null\nE:\n${base}`, [identity]);
    expect(f.names).toEqual(['A', 'B', 'C']);
    expect(f.skipped).toEqual(['N', 'E']);
    expect(() => f.decrypt('N')).toThrow(expect.objectContaining({ code: 'RWS_SOPS_KEY_NOT_FOUND' }) as Error);
  });
});

describe('the MAC covers everything and in the go-yaml sense', () => {
  test('unencrypted values are hashed in Go form: 0x1F as 31, an unquoted date as a time', async () => {
    const text = `N_unencrypted: 0x1F\nD_unencrypted: 2024-01-01\n${base}`;
    const hex = createHash('sha512').update(`31${'2024-01-01T00:00:00Z'}${SECRET}beesea`).digest('hex').toUpperCase();
    const lastModified = /lastmodified: "(.*)"/.exec(base)![1]!;
    const signed = text.replace(/^( *)mac: .*$/m, `$1mac: ${encryptMac(hex, dataKey, lastModified)}`);
    const f = await openSopsFile(signed, [identity]);
    expect(f.decrypt('N_unencrypted')).toBe('0x1F'); // served as written
    expect(f.decrypt('D_unencrypted')).toBe('2024-01-01');
    // Quoting the same text makes it a string, which hashes differently.
    expect((await failure(signed.replace('0x1F', '"0x1F"'))).code).toBe('RWS_SOPS_MAC_MISMATCH');
  });

  test('a multi-document file has one MAC over all documents; names come from the first', async () => {
    const second = `X: ${enc('second doc', ['X'])}\n${sopsBlock()}`;
    const text = resign(`${base}---\n${second}`);
    const f = await openSopsFile(text, [identity]);
    expect(f.names).toEqual(['A', 'B', 'C']);
    const tampered = text.replace(/^X: ENC\[AES256_GCM,data:./m, (m) => m.slice(0, -1) + (m.endsWith('A') ? 'B' : 'A'));
    expect((await failure(tampered)).code).toBe('RWS_SOPS_MAC_MISMATCH');
    const dropped = text.slice(0, text.indexOf('\n---\n') + 1);
    expect(dropped).not.toContain('X: ');
    expect(dropped).toContain('A: ');
    expect((await failure(dropped)).code).toBe('RWS_SOPS_MAC_MISMATCH');
  });

  test('mac_only_encrypted leaves unencrypted values out of the MAC', async () => {
    const text = resign(`NOTE_unencrypted: hello\n${base.replace('    unencrypted_suffix', '    mac_only_encrypted: true\n    unencrypted_suffix')}`);
    await openSopsFile(text, [identity]);
    const changed = await openSopsFile(text.replace('NOTE_unencrypted: hello', 'NOTE_unencrypted: bye'), [identity]);
    expect(changed.decrypt('NOTE_unencrypted')).toBe('bye');
    expect((await failure(text.replace('mac_only_encrypted: true', 'mac_only_encrypted: false'))).code).toBe('RWS_SOPS_MAC_MISMATCH');
  });

  test('sequence comments stored as type:comment elements stay out of the MAC', async () => {
    const comment = formatEnc(encryptEnc(dataKey, Buffer.from(' a comment'), aadOf(['L']), 'comment'));
    const text = `L:\n    - ${comment}\n    - ${enc('item', ['L'])}\n${base}`;
    // Signed by hand: the hash covers the list item and the values, not the comment (FORMAT.md §4).
    const hex = createHash('sha512').update(`item${SECRET}beesea`).digest('hex').toUpperCase();
    const signed = text.replace(/^( *)mac: .*$/m, `$1mac: ${encryptMac(hex, dataKey, /lastmodified: "(.*)"/.exec(base)![1]!)}`);
    const f = await openSopsFile(signed, [identity]);
    expect(f.skipped).toEqual(['L']);
  });
});

describe('serving', () => {
  let file: SopsFile;
  beforeAll(async () => {
    file = await openSopsFile(base, [identity]);
  });

  test('decrypt on demand, unknown names refused by code', () => {
    expect(file.decrypt('A')).toBe(SECRET);
    for (const name of ['missing', 'sops', '__proto__', 'constructor', 'toString']) {
      expect(() => file.decrypt(name)).toThrow(expect.objectContaining({ code: 'RWS_SOPS_KEY_NOT_FOUND' }) as Error);
    }
  });

  test('no plaintext or data key is visible on the object', () => {
    const shown = `${JSON.stringify(file)} ${String(Object.keys(file))}`;
    expect(shown).not.toContain(SECRET);
    expect(Object.keys(file).sort()).toEqual(['names', 'skipped', 'unprotected']);
  });

  test('a top-level __proto__ key read from a file is an ordinary name', async () => {
    const text = resign(`__proto__: ${enc('proto-value', ['__proto__'])}\n${base}`);
    const f = await openSopsFile(text, [identity]);
    expect(f.names[0]).toBe('__proto__');
    expect(f.decrypt('__proto__')).toBe('proto-value');
    expect(f.decryptAll().get('__proto__')).toBe('proto-value');
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  test('a large file (20 000 values) opens in reasonable time', async () => {
    const values = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`K${i}`, `v${i}`]));
    const text = await createSopsFile(values, [await identityToRecipient(identity)]);
    const started = Date.now();
    const f = await openSopsFile(text, [identity]);
    expect(f.names).toHaveLength(20_000);
    expect(f.decrypt('K19999')).toBe('v19999');
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
