// The stored logins file with real files: what login writes reads back; anything else (modes,
// links, hand edits) is refused with a stable code and never with the key in the message.
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { credentialsPath, readLogins, type StoredLogin, vaultUrlKey, writeLogins } from '../../../src/config/credential-store.js';

const KEY = `rws_sk_${'0123456789abcdef'.repeat(2)}`;
const UID = process.getuid!();
const LOGIN: StoredLogin = {
  vault_url: 'https://vault.example:8200',
  profile: 'default',
  api_key: KEY,
  key_id: 'ak_0123456789abcdef',
  key_name: 'dev laptop',
  environments: ['prod', 'staging'],
  key_patterns: ['SERVICE_B_*'],
  expires_at: null,
  admin: false,
  stored_at: '2030-01-01T00:00:00.000Z',
};

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-store-'));
  file = join(dir, 'run-with-secrets', 'credentials.yaml');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(beforeWrite = false): Promise<{ code: string; message: string; hint: string }> {
  const error = await readLogins(file, UID, beforeWrite).then(
    () => undefined,
    (caught: unknown) => caught as { code: string; message: string; hint: string },
  );
  if (!error) throw new Error('the file was accepted');
  expect(error.message).not.toContain(KEY.slice(7, 20));
  return error;
}

describe('the stored logins file', () => {
  it('reads back what it writes: 0600 in a 0700 directory, entries side by side', async () => {
    const other = { ...LOGIN, vault_url: 'http://127.0.0.1:8200', profile: 'ci', expires_at: '2031-01-01T00:00:00.000Z', admin: true };
    await writeLogins(file, UID, [LOGIN, other]);
    expect(lstatSync(file).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(dir, 'run-with-secrets')).mode & 0o777).toBe(0o700);
    expect(await readLogins(file, UID)).toEqual([LOGIN, other]);
    expect(await readLogins(join(dir, 'absent.yaml'), UID)).toEqual([]);
  });

  it('narrows an existing directory of ours to 0700, and replaces a planted link instead of writing through it', async () => {
    mkdirSync(join(dir, 'run-with-secrets'), { mode: 0o755 });
    chmodSync(join(dir, 'run-with-secrets'), 0o755);
    const target = join(dir, 'elsewhere');
    writeFileSync(target, 'untouched', { mode: 0o600 });
    symlinkSync(target, file);
    await writeLogins(file, UID, [LOGIN]);
    expect(lstatSync(join(dir, 'run-with-secrets')).mode & 0o777).toBe(0o700);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
  });

  it.each([0o644, 0o640, 0o604, 0o620])('refuses a file with mode %o (RWS_CREDENTIAL_FILE_MODE)', async (mode) => {
    await writeLogins(file, UID, [LOGIN]);
    chmodSync(file, mode);
    const error = await refusal();
    expect(error.code).toBe('RWS_CREDENTIAL_FILE_MODE');
    expect(error.hint).toContain(`chmod 600 ${file}`);
  });

  it('refuses a symbolic link, even to a private file, and a directory', async () => {
    mkdirSync(join(dir, 'run-with-secrets'), { mode: 0o700 });
    const target = join(dir, 'real.yaml');
    await writeLogins(target, UID, [LOGIN]);
    symlinkSync(target, file);
    expect((await refusal()).code).toBe('RWS_CREDENTIAL_STORE_INVALID');
    rmSync(file);
    mkdirSync(file);
    expect((await refusal()).code).toBe('RWS_CREDENTIAL_STORE_INVALID');
  });

  it('refuses the logins in a directory open to group or others, with the chmod that closes it; a login or logout, whose write narrows it, reads on', async () => {
    await writeLogins(file, UID, [LOGIN]);
    const store = join(dir, 'run-with-secrets');
    for (const mode of [0o755, 0o750, 0o701, 0o707]) {
      chmodSync(store, mode);
      const error = await refusal();
      expect(error.code).toBe('RWS_CREDENTIAL_FILE_MODE');
      expect(error.message).toBe(`refusing the stored logins ${file}: their directory ${store} is open to group or others (mode ${mode.toString(8)})`);
      expect(error.hint).toBe(`chmod 700 ${store}: logins are kept 0600 in a 0700 directory (a login narrows it too)`);
      expect((await readLogins(file, UID, true))[0]?.key_id).toBe(LOGIN.key_id);
    }
    await writeLogins(file, UID, [LOGIN]);
    expect(lstatSync(store).mode & 0o777).toBe(0o700);
    expect(await readLogins(file, UID)).toEqual([LOGIN]);
  });

  it('an open directory without a logins file in it refuses nothing (one made 0755 for config.yaml)', async () => {
    mkdirSync(join(dir, 'run-with-secrets'), { mode: 0o755 });
    chmodSync(join(dir, 'run-with-secrets'), 0o755);
    writeFileSync(join(dir, 'run-with-secrets', 'config.yaml'), 'vault_url: https://vault.example\n');
    expect(await readLogins(file, UID)).toEqual([]);
  });

  it('refuses logins whose directory is a link (never followed) or not a directory, on a read as on a write', async () => {
    const real = join(dir, 'dotfiles');
    await writeLogins(join(real, 'credentials.yaml'), UID, [LOGIN]);
    symlinkSync(real, join(dir, 'run-with-secrets'));
    for (const beforeWrite of [false, true]) {
      const error = await refusal(beforeWrite);
      expect(error.code).toBe('RWS_CREDENTIAL_STORE_INVALID');
      expect(error.message).toBe(`refusing the stored logins ${file}: their directory ${join(dir, 'run-with-secrets')} is a symbolic link, not a directory`);
      expect(error.hint).toBe(`rm ${join(dir, 'run-with-secrets')} (a link goes without its target), then log in again`);
    }
    const written = await writeLogins(file, UID, [LOGIN]).then(() => undefined, (caught: unknown) => caught as { code: string; message: string });
    expect(written).toMatchObject({ code: 'RWS_CREDENTIAL_STORE_INVALID', message: expect.stringContaining('is a symbolic link, not a directory') });
    rmSync(join(dir, 'run-with-secrets'));
    writeFileSync(join(dir, 'run-with-secrets'), 'a file', { mode: 0o600 });
    expect((await refusal()).message).toBe(`refusing the stored logins ${file}: their directory ${join(dir, 'run-with-secrets')} is not a directory`);
  });

  it.skipIf(UID !== 0)("another user's directory is theirs: refused on a read, no chown offered; root's, as a user finds it after a sudo that kept their HOME: the chown -R that gives it back", async () => {
    await writeLogins(file, UID, [LOGIN]);
    const store = join(dir, 'run-with-secrets');
    chownSync(store, 65534, 65534);
    for (const beforeWrite of [false, true]) {
      const error = await refusal(beforeWrite);
      expect(error.code).toBe('RWS_CREDENTIAL_STORE_INVALID');
      expect(error.message).toBe(`refusing the stored logins ${file}: their directory ${store} is owned by uid 65534, not by you (uid 0)`);
      expect(error.hint).toBe("it is uid 65534's: run as that user, or point HOME (sudo -H) or XDG_CONFIG_HOME at your own; do not remove it");
    }
    chownSync(store, 0, 0);
    const asUser = await readLogins(file, 65534).then(() => undefined, (caught: unknown) => caught as { code: string; message: string; hint: string });
    expect(asUser).toMatchObject({ code: 'RWS_CREDENTIAL_STORE_INVALID', message: `refusing the stored logins ${file}: their directory ${store} is owned by uid 0, not by you (uid 65534)` });
    expect(asUser?.hint).toBe(`root made it (sudo without -H keeps your HOME): chown -R 65534 ${store} as root, then run again`);
  });

  const entry = (fields: Record<string, string>) => {
    const base: Record<string, string> = {
      vault_url: 'https://vault.example:8200',
      profile: 'default',
      api_key: KEY,
      key_id: 'ak_0123456789abcdef',
      key_name: 'dev',
      environments: '[prod]',
      key_patterns: "['A_*']",
      expires_at: 'null',
      admin: 'false',
      stored_at: '2030-01-01T00:00:00.000Z',
    };
    return Object.entries({ ...base, ...fields })
      .filter(([, value]) => value !== 'DROP')
      .map(([key, value], index) => `${index === 0 ? '  - ' : '    '}${key}: ${value}`)
      .join('\n');
  };
  const good = `version: 1\ncredentials:\n${entry({})}\n`;

  it.each([
    ['not YAML', 'version: [1\n'],
    ['a list at the top', `- ${KEY}\n`],
    ['an unknown top-level key', `${good}extra: 1\n`],
    ['another version', good.replace('version: 1', 'version: 2')],
    ['credentials not a list', 'version: 1\ncredentials: {}\n'],
    ['a missing field', `version: 1\ncredentials:\n${entry({ stored_at: 'DROP' })}\n`],
    ['an unknown field', `${good}    note: hi\n`],
    ['a malformed key', `version: 1\ncredentials:\n${entry({ api_key: `${KEY}0` })}\n`],
    ['a key with an inner space', `version: 1\ncredentials:\n${entry({ api_key: `'${KEY.slice(0, 20)} ${KEY.slice(20)}'` })}\n`],
    ['a URL not in stored form', `version: 1\ncredentials:\n${entry({ vault_url: 'https://VAULT.example:443/' })}\n`],
    ['a URL with a password', `version: 1\ncredentials:\n${entry({ vault_url: 'https://u:p@vault.example' })}\n`],
    ['a bad profile name', `version: 1\ncredentials:\n${entry({ profile: "'../x'" })}\n`],
    ['a terminal escape in the name', `version: 1\ncredentials:\n${entry({ key_name: '"dev\\e[2J"' })}\n`],
    ['environments as a string', `version: 1\ncredentials:\n${entry({ environments: 'prod' })}\n`],
    ['a local-time date', `version: 1\ncredentials:\n${entry({ expires_at: "'2030-01-01T00:00:00+02:00'" })}\n`],
    ['admin as a string', `version: 1\ncredentials:\n${entry({ admin: 'yes' })}\n`],
    ['the same vault and profile twice', `version: 1\ncredentials:\n${entry({})}\n${entry({ api_key: `rws_sk_${'f'.repeat(32)}` })}\n`],
    ['a duplicated mapping key', `version: 1\nversion: 1\ncredentials: []\n`],
    ['an alias', `version: 1\ncredentials:\n${entry({ environments: '&envs [prod]' })}\n${entry({ profile: 'b', environments: '*envs' })}\n`],
    ['a custom tag', `version: 1\ncredentials: !!js/function 'return 1'\n`],
  ])('refuses a hand-edited file with %s (RWS_CREDENTIAL_STORE_INVALID)', async (_what, text) => {
    mkdirSync(join(dir, 'run-with-secrets'), { mode: 0o700 });
    writeFileSync(file, text, { mode: 0o600 });
    const error = await refusal();
    expect(error.code).toBe('RWS_CREDENTIAL_STORE_INVALID');
    expect(error.hint).toContain('logout --all');
  });

  it('accepts the hand-built good file the refusals are made from', async () => {
    mkdirSync(join(dir, 'run-with-secrets'), { mode: 0o700 });
    writeFileSync(file, good, { mode: 0o600 });
    expect((await readLogins(file, UID))[0]?.api_key).toBe(KEY);
  });
});

describe('where and under which URL', () => {
  it('lives under XDG_CONFIG_HOME when it is absolute, else ~/.config', () => {
    expect(credentialsPath({ XDG_CONFIG_HOME: '/x/cfg', HOME: '/home/u' })).toBe('/x/cfg/run-with-secrets/credentials.yaml');
    expect(credentialsPath({ XDG_CONFIG_HOME: 'relative', HOME: '/home/u' })).toBe('/home/u/.config/run-with-secrets/credentials.yaml');
    expect(credentialsPath({})).toBeUndefined();
  });

  it('stores one form of each vault URL', () => {
    expect(vaultUrlKey('https://Vault.Example:443/')).toBe('https://vault.example');
    expect(vaultUrlKey('http://127.0.0.1:8200//')).toBe('http://127.0.0.1:8200');
    expect(vaultUrlKey('https://vault.example:8200/prefix/')).toBe('https://vault.example:8200/prefix');
    for (const bad of ['not a url', 'ftp://vault', 'https://u:p@vault', 'https://vault?x=1', 'https://vault#f']) expect(vaultUrlKey(bad)).toBeUndefined();
  });
});
