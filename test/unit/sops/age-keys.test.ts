// age identities (FORMAT.md §6): the key file format, SOPS_AGE_KEY / SOPS_AGE_KEY_FILE, and the
// key file's mode, since it is a credential.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateIdentity, generateHybridIdentity } from 'age-encryption';
import { identityToRecipient, loadAgeIdentities, parseAgeIdentities, SopsError } from '../../../src/sops/index.js';

const fixtureKeys = readFileSync(new URL('../../fixtures/sops/sops-age/key.txt', import.meta.url), 'utf8');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SopsError);
    return (e as SopsError).code;
  }
  return undefined;
}

describe('parseAgeIdentities', () => {
  test('reads the published key file, skipping comments', () => {
    const keys = parseAgeIdentities(fixtureKeys);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^AGE-SECRET-KEY-1/);
  });

  test('skips blank and # lines, accepts CRLF and post-quantum keys, drops duplicates', async () => {
    const a = await generateIdentity();
    const pq = await generateHybridIdentity();
    const text = `# created: now\r\n\r\n${a}\r\n  # indented comment\n${pq}\n${a}\n`;
    expect(parseAgeIdentities(text)).toEqual([a, pq]);
    expect(parseAgeIdentities('')).toEqual([]);
  });

  test.each([
    ['garbage', 'hello world'],
    ['a recipient instead of an identity', 'age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr'],
    ['a plugin identity', 'AGE-PLUGIN-YUBIKEY-1QQQQQQ'],
    ['a truncated key', 'AGE-SECRET-KEY-1QXRVEJH9'],
    ['two keys on one line', 'AGE-SECRET-KEY-1A AGE-SECRET-KEY-1B'],
    ['an ssh key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI'],
  ])('refuses %s without echoing the line', (_what, line) => {
    let message = '';
    try {
      parseAgeIdentities(`# ok\n${line}\n`);
    } catch (e) {
      expect((e as SopsError).code).toBe('RWS_SOPS_NO_IDENTITY');
      message = (e as Error).message;
    }
    expect(message).toContain('line 2');
    expect(message).not.toContain(line);
  });
});

describe('loadAgeIdentities', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rws-sops-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('adds SOPS_AGE_KEY (whitespace separated) and SOPS_AGE_KEY_FILE together', async () => {
    const [a, b, c] = await Promise.all([generateIdentity(), generateIdentity(), generateIdentity()]);
    const file = join(dir, 'keys.txt');
    await writeFile(file, `# file\n${c}\n${a}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
    expect(await loadAgeIdentities({ SOPS_AGE_KEY: `${a} ${b}\n`, SOPS_AGE_KEY_FILE: file })).toEqual([a, b, c]);
    expect(await loadAgeIdentities({})).toEqual([]);
  });

  test.skipIf(process.platform === 'win32')('refuses a key file readable by group or others', async () => {
    const file = join(dir, 'open.txt');
    await writeFile(file, `${await generateIdentity()}\n`);
    await chmod(file, 0o644);
    const e = await loadAgeIdentities({ SOPS_AGE_KEY_FILE: file }).catch((x: unknown) => x);
    expect((e as SopsError).code).toBe('RWS_CREDENTIAL_FILE_MODE');
    expect((e as SopsError).hint).toContain('chmod 600');
  });

  test('a missing key file is reported by path', async () => {
    const e = await loadAgeIdentities({ SOPS_AGE_KEY_FILE: join(dir, 'nope.txt') }).catch((x: unknown) => x);
    expect((e as SopsError).code).toBe('RWS_SOPS_NO_IDENTITY');
    expect((e as Error).message).toContain('nope.txt');
  });
});

describe('identityToRecipient', () => {
  test('gives the recipient stated for the fixture key', async () => {
    const [key] = parseAgeIdentities(fixtureKeys);
    expect(await identityToRecipient(key!)).toBe('age1je6kjhzuhdjy3fqptpttxjh5k8q46vygzlgtpuq3030c947pc5tqz9dqvr');
  });

  test('post-quantum identities give age1pq1 recipients; garbage is refused', async () => {
    expect(await identityToRecipient(await generateHybridIdentity())).toMatch(/^age1pq1/);
    const e = await identityToRecipient('AGE-SECRET-KEY-1NOPE').catch((x: unknown) => x);
    expect((e as SopsError).code).toBe('RWS_SOPS_NO_IDENTITY');
    expect(codeOf(() => parseAgeIdentities('AGE-SECRET-KEY-1NOPE'))).toBe('RWS_SOPS_NO_IDENTITY');
  });
});
