// --sops-file: files written by the real sops, opened natively; the MAC is checked first.
import { copyFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fixture, makeRuntimeDir, removeDir, ROOT, runBin } from '../helpers/cli.js';

const SOPS = path.join(ROOT, 'test/fixtures/sops');
let dir: string;
let keyFile: string;

beforeEach(() => {
  dir = makeRuntimeDir();
  // A published test key; copied so it can be 0600 (git does not keep modes).
  keyFile = path.join(dir, 'key.txt');
  copyFileSync(path.join(SOPS, 'sops-age/key.txt'), keyFile);
  chmodSync(keyFile, 0o600);
});
afterEach(() => removeDir(dir));

describe('--sops-file', () => {
  it('top-level scalars become secrets as sops writes them; nested values are skipped and named with -v', async () => {
    const result = await runBin(['--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '-v', '--', fixture('print-env.mjs')], { runtimeDir: dir, env: { SOPS_AGE_KEY_FILE: keyFile } });
    expect(result.exitCode, result.stderr).toBe(0);
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env).toMatchObject({ secret: 'this is a secret', string: 'string', int: '7', float: '3.14' });
    // The plaintext sops encrypted for a YAML `true` (FORMAT.md §2: Go writes True/False).
    expect(env.boolean).toBe('True');
    expect(env).not.toHaveProperty('complex');
    expect(result.stderr).toMatch(/skipped .*complex/);
    expect(result.stderr).not.toContain('this is a secret');
    expect(env).not.toHaveProperty('SOPS_AGE_KEY_FILE');
  });

  it('a file changed outside sops (MAC mismatch) is refused and nothing runs', async () => {
    const tampered = path.join(dir, 'tampered.enc.yaml');
    const text = readFileSync(path.join(SOPS, 'sops-age/secret.enc.yaml'), 'utf8');
    // One flipped character of one ciphertext: GCM and the MAC both refuse it.
    writeFileSync(tampered, text.replace('data:LNzAFGse', 'data:LNzAFGsf'), { mode: 0o600 });
    const result = await runBin(['--sops-file', tampered, '--', fixture('print-env.mjs')], { runtimeDir: dir, env: { SOPS_AGE_KEY_FILE: keyFile } });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    // GCM catches it first, naming the value; the line still says what to do, as the MAC's does.
    expect(result.stderr).toMatch(/^run-with-secrets: error RWS_SOPS_MAC_MISMATCH: [^\n]+ \(hint: the file was changed outside sops, or is damaged; restore it from version control\)$/);
  });

  it.each([
    ['~/.config/sops/age/keys.txt', (home: string) => ({ HOME: home }), '.config'],
    ['$XDG_CONFIG_HOME/sops/age/keys.txt', (home: string) => ({ HOME: home, XDG_CONFIG_HOME: path.join(home, 'xdg') }), 'xdg'],
  ])('with neither SOPS_AGE_KEY_FILE nor SOPS_AGE_KEY, the key comes from %s, as sops looks for it', async (_where, env, configDir) => {
    const home = path.join(dir, 'home');
    mkdirSync(path.join(home, configDir, 'sops/age'), { recursive: true });
    copyFileSync(keyFile, path.join(home, configDir, 'sops/age/keys.txt'));
    chmodSync(path.join(home, configDir, 'sops/age/keys.txt'), 0o600);
    const result = await runBin(['--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '-v', '--', fixture('print-env.mjs')], { runtimeDir: dir, env: env(home) });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ secret: 'this is a secret' });
    expect(result.stderr).toContain(`age identity from ${path.join(home, configDir, 'sops/age/keys.txt')}`);
  });

  it('no identity, or the wrong one, is a clear error', async () => {
    const none = await runBin(['--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '--', 'true'], { runtimeDir: dir, env: { HOME: dir } });
    expect(none.exitCode).toBe(125);
    expect(none.stderr).toMatch(/no age identity .*SOPS_AGE_KEY_FILE.*or put it in .*\/\.config\/sops\/age\/keys\.txt as sops does/);
    const other = path.join(dir, 'other.txt');
    copyFileSync(path.join(SOPS, 'sops-nix/age-keys.txt'), other);
    chmodSync(other, 0o600);
    const wrong = await runBin(['--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '--', 'true'], { runtimeDir: dir, env: { SOPS_AGE_KEY_FILE: other } });
    expect(wrong.exitCode).toBe(125);
    expect(wrong.stderr).toContain('RWS_SOPS_NO_IDENTITY');
  });

  it('a file that is not SOPS (a .env given to --sops-file) is named as such, with or without an age key', async () => {
    const dotenv = path.join(dir, '.env');
    writeFileSync(dotenv, 'DB_HOST=db1\n', { mode: 0o600 });
    // Without a key it used to ask for one: the user would set one up and only then learn this.
    for (const env of [{ HOME: dir }, { SOPS_AGE_KEY_FILE: keyFile }]) {
      const result = await runBin(['--sops-file', dotenv, '--', 'true'], { runtimeDir: dir, env });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toBe(`run-with-secrets: error RWS_SOPS_INVALID: ${dotenv}: has a document whose top level is not a map (hint: check it with sops -d ${dotenv}; a dotenv file goes to --env-file)`);
    }
  });

  it('a key file readable by others is refused (it is a credential)', async () => {
    chmodSync(keyFile, 0o644);
    const result = await runBin(['--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '--', 'true'], { runtimeDir: dir, env: { SOPS_AGE_KEY_FILE: keyFile } });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain('RWS_CREDENTIAL_FILE_MODE');
  });

  it('combines with --env-file (later sources win) and -k selection', async () => {
    const envFile = path.join(dir, '.env');
    writeFileSync(envFile, 'string=from-env-file\nLOCAL_ONLY=1\n', { mode: 0o600 });
    const result = await runBin(['--env-file', envFile, '--sops-file', path.join(SOPS, 'sops-age/secret.enc.yaml'), '-k', 'str*', '--key', 'LOCAL_ONLY', '--', fixture('print-env.mjs')], {
      runtimeDir: dir,
      env: { SOPS_AGE_KEY_FILE: keyFile },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env.string).toBe('string');
    expect(env.LOCAL_ONLY).toBe('1');
    expect(env).not.toHaveProperty('secret');
  });
});
