// TLS is verified: the real server with a certificate from a test CA is refused until that CA is
// given with caFile, and then only that CA is trusted.
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApiKey, makeStore, type RunningServer, startServer, type TestStore } from '../server/helpers/server.js';
import { ConfigError } from '../../src/errors.js';
import { baseEnv, BIN, makeSharedDir, removeDir, runBin } from '../helpers/cli.js';
import { expectVaultError, makeClient } from './helpers/client.js';
import { makeCa, makeTestCa, type TestCa } from './helpers/test-ca.js';

let store: TestStore;
let server: RunningServer;
let apiKey: string;
let ca: TestCa;

beforeAll(async () => {
  store = await makeStore({ prod: { SERVICE_B_KEY: 'tls-secret-value-42' } });
  [ca, apiKey] = await Promise.all([makeTestCa(store.root), makeApiKey(store, ['prod'], ['SERVICE_*']).then((k) => k.key)]);
  server = await startServer(store, ['--tls-cert', ca.serverCert, '--tls-key', ca.serverKey]);
});
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

const request = { subject: 'tls-test', environment: 'prod', keyPattern: 'SERVICE_B_*', ttlMinutes: 1, usageLimit: 1 };

describe('TLS', () => {
  it('serves over https', () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refuses a certificate from an unknown CA with RWS_VAULT_TLS, without retrying', async () => {
    const { client, debug } = await makeClient(server.url, { retries: 2 });
    try {
      const error = await expectVaultError(client.mintToken(apiKey, request), 'RWS_VAULT_TLS', [apiKey]);
      expect(error.message).toContain(server.url);
      expect(error.hint).toContain('--ca-file');
      expect(debug.filter((line) => line.includes('attempt'))).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('still verifies with NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment', async () => {
    // Run as users run it, in a process of its own: Node's warning about the variable then goes
    // to that process's stderr, not into the test output.
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], {
      runtimeDir: store.root,
      env: { RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey, NODE_TLS_REJECT_UNAUTHORIZED: '0' },
    });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain(`error RWS_VAULT_TLS`);
    expect(result.stderr).not.toContain(apiKey);
  });

  it('works with caFile naming the test CA', async () => {
    const { client } = await makeClient(server.url, { caFile: ca.caCert });
    try {
      const { token } = await client.mintToken(apiKey, request);
      expect(Object.fromEntries(await client.fetchBatch(token, 'prod', { pattern: 'SERVICE_B_*' }))).toEqual({ SERVICE_B_KEY: 'tls-secret-value-42' });
      await client.revokeToken(token);
    } finally {
      await client.close();
    }
  });

  it('trusts only the CAs in caFile', async () => {
    const other = await makeCa(store.root, 'other-ca');
    const { client } = await makeClient(server.url, { caFile: other });
    try {
      await expectVaultError(client.health(), 'RWS_VAULT_TLS');
    } finally {
      await client.close();
    }
  });

  it('refuses a CA file that holds no certificate as RWS_VAULT_TLS', async () => {
    await expectVaultError(makeClient(server.url, { caFile: path.join(store.root, 'test-ca.key') }), 'RWS_VAULT_TLS');
  });
});

/**
 * nobody (from /etc/passwd), when it can run this checkout's CLI: not where no process may be
 * started as it (a user namespace that maps no such id), nor from a checkout it cannot reach.
 */
async function unprivilegedUser(): Promise<{ uid: number; gid: number } | undefined> {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.startsWith('nobody:'));
  if (line === undefined) return undefined;
  const [uid, gid] = line.split(':').slice(2, 4).map(Number) as [number, number];
  const started = await execa(BIN, ['--version'], { uid, gid, reject: false, extendEnv: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }).catch(() => undefined);
  return started?.exitCode === 0 ? { uid, gid } : undefined;
}

describe('a CA file that cannot be read', () => {
  // Not a TLS failure (no connection is tried): a setting to fix, reported as an unreadable
  // config file is, with the path, the reason and the errno.
  const runWithCa = (caFile: string, how: 'flag' | 'env' | 'config') => {
    const config = path.join(store.root, `ca-config-${how}.yaml`);
    writeFileSync(config, `ca_file: ${caFile}\n`, { mode: 0o600 });
    const args = how === 'flag' ? ['--ca-file', caFile] : how === 'config' ? ['--config', config] : [];
    return runBin(['-e', 'prod', '-k', 'SERVICE_B_*', ...args, '--', 'true'], {
      runtimeDir: store.root,
      env: { RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey, ...(how === 'env' ? { RWS_CA_FILE: caFile } : {}) },
    });
  };

  it.each(['flag', 'env', 'config'] as const)('missing (given by %s): RWS_CONFIG_UNREADABLE, ENOENT, exit 125, a hint', async (how) => {
    const missing = path.join(store.root, 'nope.pem');
    const result = await runWithCa(missing, how);
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain(`error RWS_CONFIG_UNREADABLE: cannot read the CA file ${missing}: no such file (ENOENT) (hint: check the path given by --ca-file, RWS_CA_FILE or ca_file in the config file, and that this user may read it)`);
    expect(result.stderr).not.toContain('RWS_VAULT_TLS');
    expect(result.stderr).not.toContain(apiKey);
  });

  it('a directory given as the CA file: RWS_CONFIG_UNREADABLE, EISDIR', async () => {
    const dir = mkdtempSync(path.join(store.root, 'ca-dir-'));
    const result = await runWithCa(dir, 'flag');
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain(`error RWS_CONFIG_UNREADABLE: cannot read the CA file ${dir}: is a directory (EISDIR) (hint: `);
  });

  it('a file this user may not read: RWS_CONFIG_UNREADABLE, EACCES (as root, the CLI runs as nobody, whom the kernel refuses)', async (context) => {
    // Root reads a 000 file (CAP_DAC_OVERRIDE), and CI runs as root: the CLI then runs as an
    // unprivileged user, in a directory of its own, on a 000 file it owns.
    const user = process.getuid?.() === 0 ? await unprivilegedUser() : undefined;
    if (process.getuid?.() === 0 && user === undefined) return context.skip();
    const dir = makeSharedDir();
    try {
      const unreadable = path.join(dir, 'unreadable-ca.pem');
      copyFileSync(ca.caCert, unreadable);
      chmodSync(unreadable, 0o000);
      const runtimeDir = path.join(dir, 'runtime');
      mkdirSync(runtimeDir, { mode: 0o700 });
      if (user) for (const owned of [unreadable, runtimeDir]) chownSync(owned, user.uid, user.gid);
      const result = await execa(BIN, ['-e', 'prod', '-k', 'SERVICE_B_*', '--ca-file', unreadable, '--', 'true'], {
        reject: false,
        extendEnv: false,
        env: baseEnv(runtimeDir, { HOME: runtimeDir, RWS_VAULT_URL: server.url, RWS_API_KEY: apiKey }),
        stdin: 'ignore',
        ...(user ?? {}),
      });
      expect(result.exitCode, result.stderr).toBe(125);
      expect(result.stderr).toContain(`error RWS_CONFIG_UNREADABLE: cannot read the CA file ${unreadable}: permission denied (EACCES) (hint: `);
      expect(result.stderr).not.toContain(apiKey);
    } finally {
      removeDir(dir);
    }
  });

  it('is a ConfigError from the client too, with the errno', async () => {
    const error = await makeClient(server.url, { caFile: path.join(store.root, 'nope.pem') }).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('RWS_CONFIG_UNREADABLE');
    expect((error as ConfigError).exitCode).toBe(125);
    expect((error as ConfigError).message).toContain('ENOENT');
  });
});
