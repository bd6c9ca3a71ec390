import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../../src/config/config-file.js';
import { findConfigFile } from '../../../src/config/locate.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rws-config-unit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(text: string, mode = 0o600): string {
  const path = join(dir, 'config.yaml');
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

describe('loadConfigFile', () => {
  it('reads every setting, applies a profile over the top level and expands ${VAR}', async () => {
    const path = write(`vault_url: https://\${HOST}:8200
environment: dev
key_patterns: APP_*
inject_as: file
keep_env: [AWS_REGION]
ca_file: /ca.pem
timeout: 3
retries: 0
credentials: { api_key: "\${KEY}" }
profiles:
  prod: { environment: prod, retries: 5 }
`, 0o644);
    const config = await loadConfigFile(path, 'prod', { HOST: 'vault.example', KEY: 'k' });
    expect(config.values).toEqual({
      vault_url: 'https://vault.example:8200', environment: 'prod', key_patterns: ['APP_*'], inject_as: 'file', keep_env: ['AWS_REGION'],
      ca_file: '/ca.pem', timeout: 3, retries: 5, credentials: { api_key: 'k' },
    });
    expect(config.profiles).toEqual(['prod']);
  });

  it('an empty file is an empty config', async () => {
    expect((await loadConfigFile(write(''), undefined, {})).values).toEqual({});
  });

  it.each([
    ['__proto__: {polluted: true}\n', /unknown setting __proto__|must be/],
    ['constructor: x\n', /unknown setting constructor/],
    ['profiles: [a, b]\n', /profiles must be a mapping/],
    ['profiles:\n  dev: 3\n', /profile dev must be a mapping/],
    ['keep_env: [1, 2]\n', /keep_env must be a list of strings/],
    ['credentials: {api_key: x, password: y}\n', /unknown setting credentials\.password/],
    ['credentials: {api_key: 42}\n', /api_key must be a string/],
    ['vault_url: ${lower-case}\n', /malformed reference/],
    ['a: &a [*a]\n', /.+/],
    ['!!js/function "x"\n', /.+/],
  ])('refuses %j with a message naming the problem', async (text, message) => {
    await expect(loadConfigFile(write(text), undefined, {})).rejects.toMatchObject({ code: expect.stringMatching(/^RWS_CONFIG_/), message: expect.stringMatching(message) });
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it.each([
    ['credentials:\n  api_key: *rws_sk_00000000000000000000000000000000\n', /^\S+ is not valid YAML: Unresolved alias \(the anchor must be set before the alias\)$/],
    ['credentials:\n  api_key: !rws_sk_00000000000000000000000000000000 x\n', /^\S+ is not valid YAML: Unresolved tag at line 2, column 12$/],
    ['credentials: {api_key: rws_sk_00000000000000000000000000000000\n', /is not valid YAML: .+ at line \d+, column \d+$/],
  ])('a YAML error says what and where, never the text it stumbled on: %j', async (text, message) => {
    const failure = await loadConfigFile(write(text), undefined, {}).catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'RWS_CONFIG_INVALID', message: expect.stringMatching(message) });
    expect(JSON.stringify(failure)).not.toContain('rws_sk_0');
    expect((failure as Error).message).not.toContain('rws_sk_0');
  });

  it('an unknown profile lists the defined ones', async () => {
    await expect(loadConfigFile(write('profiles:\n  dev: {}\n  prod: {}\n'), 'qa', {})).rejects.toMatchObject({ message: expect.stringContaining('"qa" is not defined'), hint: 'defined: dev, prod' });
  });

  it('a literal API key makes the file a credential: refused unless 0600; a ${VAR} reference does not', async () => {
    const literal = write('credentials: {api_key: rws_sk_00000000000000000000000000000000}\n', 0o640);
    await expect(loadConfigFile(literal, undefined, {})).rejects.toMatchObject({ code: 'RWS_CREDENTIAL_FILE_MODE', message: expect.not.stringContaining('rws_sk_0') });
    const inProfile = write('profiles:\n  prod:\n    credentials: {api_key: rws_sk_00000000000000000000000000000000}\n', 0o644);
    await expect(loadConfigFile(inProfile, undefined, {})).rejects.toMatchObject({ code: 'RWS_CREDENTIAL_FILE_MODE' });
    const reference = write('credentials: {api_key: "${RWS_API_KEY}"}\n', 0o644);
    expect((await loadConfigFile(reference, undefined, { RWS_API_KEY: 'x' })).values.credentials).toEqual({ api_key: 'x' });
  });

  it('refuses a file over 1 MiB without parsing it', async () => {
    await expect(loadConfigFile(write(`# ${'x'.repeat(1024 * 1024)}\n`), undefined, {})).rejects.toMatchObject({ code: 'RWS_CONFIG_INVALID', message: expect.stringContaining('larger than 1 MiB') });
  });
});

describe('findConfigFile', () => {
  it('prefers --config, then ./.run-with-secrets.yaml, then the user config; none is fine', async () => {
    expect(await findConfigFile({ explicit: '/x.yaml', cwd: dir, home: dir, xdgConfigHome: undefined })).toBe('/x.yaml');
    expect(await findConfigFile({ explicit: undefined, cwd: dir, home: dir, xdgConfigHome: undefined })).toBeUndefined();
    const user = join(dir, 'xdg', 'run-with-secrets');
    (await import('node:fs')).mkdirSync(user, { recursive: true });
    writeFileSync(join(user, 'config.yaml'), '');
    expect(await findConfigFile({ explicit: undefined, cwd: dir, home: dir, xdgConfigHome: join(dir, 'xdg') })).toBe(join(user, 'config.yaml'));
    writeFileSync(join(dir, '.run-with-secrets.yaml'), '');
    expect(await findConfigFile({ explicit: undefined, cwd: dir, home: dir, xdgConfigHome: join(dir, 'xdg') })).toBe(join(dir, '.run-with-secrets.yaml'));
  });
});
