// Values the MAC does not protect, in hand-edited .enc.yaml files: an empty value added without
// any key material, and a plaintext value the file's rule leaves unencrypted. Neither is served
// nor injected; `secret list` marks them; `secret set` refuses to write one under each sops rule.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSopsFile, identityToRecipient, parseAgeIdentities } from '../../../src/sops/index.js';
import { BIN as RWS } from '../../helpers/cli.js';
import { call, cli, cliOk, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token } from '../helpers/server.js';
import { execa } from 'execa';

let store: TestStore;
let server: RunningServer;
let apiKey: string;
let recipient: string;

beforeAll(async () => {
  store = await makeStore({ production: { DB_PASSWORD: 'protected-value-1' } });
  recipient = await identityToRecipient(parseAgeIdentities(await readFile(path.join(store.dir, 'age-identity.txt'), 'utf8'))[0] as string);
  // The attack of the issue: an empty-valued key appended by hand, no key material needed. The
  // MAC covers values, not names, and an empty value adds nothing to it, so the file verifies.
  const file = path.join(store.dir, 'production.enc.yaml');
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(/^sops:/m, 'INJECTED: ""\nsops:'), { mode: 0o600 });
  // A file with a legitimate plaintext value (the default rule leaves *_unencrypted so) and a
  // name no variable can have.
  await writeFile(path.join(store.dir, 'mixed.enc.yaml'), await createSopsFile({ API_TOKEN: 'protected-value-2', HOST_unencrypted: 'plain-host', '0word': 'zero-value' }, [recipient]), { mode: 0o600 });
  await writeFile(path.join(store.root, 'wrapper.enc.yaml'), await createSopsFile({ API_TOKEN: 'protected-value-2', HOST_unencrypted: 'plain-host' }, [recipient]), { mode: 0o600 });
  apiKey = (await makeApiKey(store, ['production', 'mixed'], ['*'])).key;
  server = await startServer(store);
});
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

describe('serving', () => {
  it('serves only encrypted values: an injected empty value and a plaintext one are neither listed, read nor batched', async () => {
    for (const [environment, good, bad] of [['production', 'DB_PASSWORD', 'INJECTED'], ['mixed', 'API_TOKEN', 'HOST_unencrypted']] as const) {
      const t = await token(server, apiKey, { environment, key_pattern: '*' });
      expect((await call(`${server.url}/api/v1/vault/${environment}`, { auth: t })).body.keys).toEqual([good]);
      expect((await call(`${server.url}/api/v1/vault/${environment}/${bad}`, { auth: t })).status).toBe(404);
      const batch = await call(`${server.url}/api/v1/vault/secrets/batch`, { auth: t, json: { environment } });
      expect(Object.keys(batch.body.secrets)).toEqual([good]);
      expect((await call(`${server.url}/api/v1/vault/secrets/batch`, { auth: t, json: { environment, keys: [good, bad] } })).status).toBe(404);
    }
  });
});

describe('secret list', () => {
  /** `secret list` of a new environment whose SOPS file gets an entry written without a key (`quotedName` goes inside YAML double quotes). */
  async function listWithKeylessEntry(environment: string, quotedName: string, value: string): Promise<{ stdout: string; stderr: string }> {
    const file = path.join(store.dir, `${environment}.enc.yaml`);
    await writeFile(file, await createSopsFile({ REAL: value }, [recipient]), { mode: 0o600 });
    await writeFile(file, `"${quotedName}": ""\n${await readFile(file, 'utf8')}`, { mode: 0o600 });
    return cli(['secret', 'list', environment, '--store', store.dir]);
  }

  it('escapes a control character in a name added without a key, never writing it raw', async () => {
    // An escape sequence that retitles the terminal, then a newline that fakes a served name.
    const listed = await listWithKeylessEntry('escaped', '\\e]0;owned\\a\\nDB_PASSWORD', 'protected-value-3');
    expect(listed.stdout).toBe('\\u001b]0;owned\\u0007\\u000aDB_PASSWORD  (never served: empty value, never encrypted)\nREAL\n');
    expect(listed.stderr).toBe('secrets-server: 1 of 2 names are never served by the API: \\u001b]0;owned\\u0007\\u000aDB_PASSWORD\n');
  });

  it('escapes a bidi override or a line separator in a name, which would reverse or break the line', async () => {
    // Shown raw, U+202E turns the rest of the line around: "DB_PASSWORD" and the mark after it.
    const listed = await listWithKeylessEntry('bidi', 'X\\u202eDROWSSAP_BD\\u2028\\u200b', 'protected-value-4');
    expect(listed.stdout).toBe('X\\u202eDROWSSAP_BD\\u2028\\u200b  (never served: empty value, never encrypted)\nREAL\n');
  });

  it('marks and counts names the API will never serve, and why', async () => {
    const production = await cli(['secret', 'list', 'production', '--store', store.dir]);
    expect(production.stdout).toBe('DB_PASSWORD\nINJECTED  (never served: empty value, never encrypted)\n');
    expect(production.stderr).toBe('secrets-server: 1 of 2 names are never served by the API: INJECTED\n');
    const mixed = await cli(['secret', 'list', 'mixed', '--store', store.dir]);
    expect(mixed.stdout).toBe(
      'API_TOKEN\nHOST_unencrypted  (never served: plain text under the file\'s rule unencrypted_suffix: _unencrypted)\n0word  (never served: not a valid name ([A-Za-z_][A-Za-z0-9_]*, at most 128))\n',
    );
    expect(mixed.stderr).toContain('2 of 3 names are never served by the API: HOST_unencrypted, 0word');
    expect(mixed.stdout + mixed.stderr).not.toContain('plain-host');
  });
});

describe('the wrapper --sops-file', () => {
  it('injects only encrypted values and names the skipped ones with -v', async () => {
    const result = await execa(RWS, ['--sops-file', path.join(store.root, 'wrapper.enc.yaml'), '-v', '--', process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.env))'], {
      env: { SOPS_AGE_KEY_FILE: path.join(store.dir, 'age-identity.txt') },
      extendEnv: true,
      reject: false,
    });
    expect(result.exitCode, String(result.stderr)).toBe(0);
    const env = JSON.parse(String(result.stdout)) as Record<string, string>;
    expect(env.API_TOKEN).toBe('protected-value-2');
    expect(env).not.toHaveProperty('HOST_unencrypted');
    expect(String(result.stderr)).toMatch(/skipped values that are not encrypted \(plain text or empty, not protected by the MAC\): HOST_unencrypted/);
    expect(String(result.stderr)).not.toContain('plain-host');
    const injected = await execa(RWS, ['--sops-file', path.join(store.dir, 'production.enc.yaml'), '-v', '--', process.execPath, '-e', 'process.stdout.write(JSON.stringify(process.env))'], {
      env: { SOPS_AGE_KEY_FILE: path.join(store.dir, 'age-identity.txt') },
      extendEnv: true,
      reject: false,
    });
    expect(JSON.parse(String(injected.stdout))).not.toHaveProperty('INJECTED');
    expect(String(injected.stderr)).toMatch(/not protected by the MAC\): INJECTED/);
  });
});

describe('secret set under each sops rule', () => {
  /** A file holding `existing`, whose rule is then replaced by hand (the MAC does not cover the rule). */
  async function fileWithRule(environment: string, existing: string, rule: string): Promise<void> {
    await cliOk(['secret', 'set', environment, existing, '--store', store.dir], { input: 'kept-value' });
    const file = path.join(store.dir, `${environment}.enc.yaml`);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(/^ {4}unencrypted_suffix: _unencrypted$/m, `    ${rule}`), { mode: 0o600 });
  }

  const cases = [
    { environment: 'rule-er', existing: 'DB_PASSWORD', rule: 'encrypted_regex: ^DB_', refused: 'API_TOKEN', accepted: 'DB_USER' },
    { environment: 'rule-ur', existing: 'SECRET', rule: 'unencrypted_regex: ^PUBLIC_', refused: 'PUBLIC_URL', accepted: 'PRIVATE_URL' },
    { environment: 'rule-us', existing: 'SECRET', rule: 'unencrypted_suffix: _plain', refused: 'URL_plain', accepted: 'URL' },
    { environment: 'rule-es', existing: 'DB_secret', rule: 'encrypted_suffix: _secret', refused: 'DB_HOST', accepted: 'API_secret' },
  ];
  for (const { environment, existing, rule, refused, accepted } of cases) {
    it(`refuses a name that "${rule}" leaves unencrypted, naming the rule, and writes nothing`, async () => {
      await fileWithRule(environment, existing, rule);
      const file = path.join(store.dir, `${environment}.enc.yaml`);
      const before = await readFile(file, 'utf8');
      const result = await cli(['secret', 'set', environment, refused, '--store', store.dir], { input: 'would-be-plaintext' });
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toBe(`secrets-server: error RWS_SECRET_UNENCRYPTED: the sops rule of ${file} (${rule}) leaves ${refused} unencrypted: it would be stored in plain text and never served; nothing was written (hint: choose a name the rule encrypts, or change the rule in the file with sops)\n`);
      expect(await readFile(file, 'utf8')).toBe(before);
      const imported = await cli(['secret', 'import', environment, '--format', 'json', '--store', store.dir], { input: JSON.stringify({ [accepted]: 'fine', [refused]: 'would-be-plaintext' }) });
      expect(imported.stderr).toContain('RWS_SECRET_UNENCRYPTED');
      expect(await readFile(file, 'utf8')).toBe(before);
      await cliOk(['secret', 'set', environment, accepted, '--store', store.dir], { input: 'encrypted-fine' });
      expect(await readFile(file, 'utf8')).not.toContain('encrypted-fine');
      expect(await readFile(file, 'utf8')).toContain(rule);
    });
  }

  it('refuses the default rule\'s _unencrypted names in a new file, and an empty value in an import', async () => {
    const created = await cli(['secret', 'set', 'fresh', 'HOST_unencrypted', '--store', store.dir], { input: 'x' });
    expect(created.stderr).toContain('(unencrypted_suffix: _unencrypted) leaves HOST_unencrypted unencrypted');
    const empty = await cli(['secret', 'import', 'fresh', '--store', store.dir], { input: 'GOOD=1\nEMPTY=\n' });
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toContain('the value of EMPTY is empty');
  });
});
