// The wrapper against a real secrets-server (plain and TLS), and against raw TCP stubs for
// answers a real server never gives. Nothing is mocked: real processes, real sockets.
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'dotenv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, makeApiKey, makeStore, startServer, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { json, reply, startStub } from '../vault-client/helpers/stub.js';
import { makeTestCa } from '../vault-client/helpers/test-ca.js';
import { execa } from 'execa';
import { BIN, baseEnv, fixture, makeRuntimeDir, removeDir, runBin, wrapperDirs } from '../helpers/cli.js';

const SECRETS = {
  SERVICE_B_DB_URL: 'postgres://b:pa$$w0rd@db/b',
  SERVICE_B_TOKEN: 'tok-"quoted"-#hash',
  SERVICE_A_KEY: 'a-key-must-not-leak',
};

let store: TestStore;
let tlsStore: TestStore;
let tlsKey: string;
let server: RunningServer;
let tlsServer: RunningServer;
let caCert: string;
let apiKey: string;
let runtimeDir: string;

beforeAll(async () => {
  store = await makeStore({ prod: SECRETS, staging: { SERVICE_B_DB_URL: 'staging-url' } });
  apiKey = (await makeApiKey(store, ['prod'], ['SERVICE_B_*'])).key;
  // One server per store (the server locks it): TLS gets a store of its own.
  tlsStore = await makeStore({ prod: SECRETS });
  tlsKey = (await makeApiKey(tlsStore, ['prod'], ['SERVICE_B_*'])).key;
  const ca = await makeTestCa(store.root);
  caCert = ca.caCert;
  server = await startServer(store);
  tlsServer = await startServer(tlsStore, ['--tls-cert', ca.serverCert, '--tls-key', ca.serverKey]);
  runtimeDir = makeRuntimeDir();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await tlsServer?.stop();
  await store?.cleanup();
  await tlsStore?.cleanup();
  if (runtimeDir) removeDir(runtimeDir);
});

function vaultEnv(url: string, extra: Record<string, string> = {}): Record<string, string> {
  return { RWS_VAULT_URL: url, RWS_API_KEY: url === tlsServer?.url ? tlsKey : apiKey, ...extra };
}

function auditLines(): Array<Record<string, unknown>> {
  return auditRowsSync(store.dir);
}

/** Everything a run printed, plus the server's audit log: none of it may hold a secret or credential. */
function expectNoLeak(...texts: string[]): void {
  const all = [...texts, JSON.stringify(auditLines()), server.stderr(), tlsServer.stderr()].join('\n');
  for (const value of [...Object.values(SECRETS), apiKey, tlsKey]) expect(all).not.toContain(value);
}

describe('run-with-secrets with a vault', () => {
  it('env mode: mints a scoped token, fetches in one batch, revokes it, runs the app with exactly those secrets', async () => {
    const before = auditLines().length;
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url, { UNRELATED: 'x' }) });
    expect(result.exitCode, result.stderr).toBe(0);
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env.SERVICE_B_DB_URL).toBe(SECRETS.SERVICE_B_DB_URL);
    expect(env.SERVICE_B_TOKEN).toBe(SECRETS.SERVICE_B_TOKEN);
    for (const name of ['SERVICE_A_KEY', 'RWS_API_KEY', 'RWS_VAULT_URL', 'UNRELATED']) expect(env).not.toHaveProperty(name);
    expect(result.stderr).toBe('');

    const events = auditLines().slice(before);
    expect(events.map((event) => `${event.event}:${event.outcome}`)).toEqual(['token.generate:success', 'secret.batch:success', 'token.revoke:success']);
    const jti = events[0]!.jti;
    expect(events.every((event) => event.jti === jti)).toBe(true);
    expect(events[0]!.subject).toMatch(/@.*:print-env\.mjs$/);
    expectNoLeak(result.stdout.replace(/"SERVICE_B_[A-Z_]+":"[^"]*"/g, ''), result.stderr);
  });

  it('the default subject always passes the vault: a command named with a newline, or with an emoji where the subject is cut, still runs', async () => {
    // USER@host: is the subject's head; the emoji lands on the 200th character either side of the cut.
    const head = `${process.env.USER ?? 'tester'}@${hostname()}:`;
    const names = [`job\nname-${randomUUID().slice(0, 8)}`, `${'x'.repeat(199 - head.length)}😀tail`, `${'x'.repeat(198 - head.length)}😀tail`];
    for (const name of names) {
      const script = path.join(runtimeDir, name);
      writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o700 });
      const before = auditLines().length;
      const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', script], { runtimeDir, env: vaultEnv(server.url, { USER: process.env.USER ?? 'tester' }) });
      expect({ name, exitCode: result.exitCode, stderr: result.stderr }).toEqual({ name, exitCode: 0, stderr: '' });
      expect(result.stdout).toBe('ran');
      const subject = auditLines().slice(before)[0]!.subject as string;
      expect([...subject].length).toBeLessThanOrEqual(200);
      expect(subject).not.toMatch(/[\p{Cc}\p{Cs}\uFFFD]/u);
      expect(subject.startsWith(head)).toBe(true);
    }
  });

  it('a --subject the vault would refuse is a usage error before any request, in a run and in token, where it was a 400 "check the environment name"', async () => {
    const before = auditLines().length;
    for (const subject of ['night\nly', 's'.repeat(257), '']) {
      for (const args of [['-e', 'prod', '-k', 'SERVICE_B_*', '--subject', subject, '--', 'true'], ['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--subject', subject, '--force']]) {
        const result = await runBin(args, { runtimeDir, env: vaultEnv(server.url) });
        expect({ args, exitCode: result.exitCode }).toEqual({ args, exitCode: 125 });
        expect(result.stderr).toContain('RWS_USAGE');
        expect(result.stderr).toContain('--subject must be 1 to 256 characters without control characters');
      }
    }
    expect(auditLines().length).toBe(before);
    // 256 characters counted in code points (512 UTF-16 units of emoji) pass.
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--subject', '😀'.repeat(256), '--', 'true'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stderr).toBe(0);
  });

  it('an API key given as --subject (or as -e, -k or --key) is never sent where the vault would keep it', async () => {
    const before = auditLines().length;
    for (const args of [['-e', 'prod', '-k', 'SERVICE_B_*', '--subject', apiKey, '--', 'true'], ['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--subject', `job ${apiKey}`, '--force']]) {
      const result = await runBin(args, { runtimeDir, env: vaultEnv(server.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toContain('RWS_USAGE: --subject looks like an API key');
      expect(result.stderr).not.toContain(apiKey);
    }
    expect(auditLines().length).toBe(before);
    // The vault refuses a mint for such an environment or pattern; a read of such a name is kept redacted.
    for (const args of [['-e', apiKey, '--', 'true'], ['-e', 'prod', '-k', apiKey, '--', 'true'], ['-e', 'prod', '--key', apiKey, '--per-key-requests', '--', 'true']]) {
      const result = await runBin(args, { runtimeDir, env: vaultEnv(server.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).not.toContain(apiKey);
    }
    // A command named like a key still runs: the default subject redacts it.
    const named = path.join(runtimeDir, apiKey);
    writeFileSync(named, '#!/bin/sh\nexit 0\n', { mode: 0o700 });
    const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', named], { runtimeDir, env: vaultEnv(server.url) });
    expect(run.exitCode, run.stderr).toBe(0);
    await rm(named);
    const rows = JSON.stringify(auditLines().slice(before));
    expect(rows).toContain(':rws_sk_[redacted]"');
    expect(rows).not.toContain(apiKey);
  });

  it('the credential in use never reaches the child, whatever --keep-env says: not from a variable the config file takes it from, nor from a copy', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rws-ref-'));
    try {
      // A reference only: the file may be shared, 0644.
      const config = path.join(dir, 'config.yaml');
      await writeFile(config, `vault_url: ${server.url}\ncredentials:\n  api_key: \${VAULT_KEY}\n`, { mode: 0o644 });
      const env = { VAULT_KEY: apiKey, AUTH_HEADER: `Bearer ${apiKey}`, KEPT: 'kept-value' };
      const run = await runBin(['--config', config, '-v', '-e', 'prod', '-k', 'SERVICE_B_*', '--keep-env', '*', '--', fixture('print-env.mjs')], { runtimeDir, env });
      expect(run.exitCode, run.stderr).toBe(0);
      const childEnv = JSON.parse(run.stdout) as Record<string, string>;
      expect(childEnv).toMatchObject({ KEPT: 'kept-value', SERVICE_B_TOKEN: SECRETS.SERVICE_B_TOKEN });
      expect(Object.keys(childEnv)).not.toContain('VAULT_KEY');
      expect(run.stdout).not.toContain(apiKey);
      expect(run.stderr).toContain('not passing AUTH_HEADER, VAULT_KEY to the child: they hold the API key in use');
      const dry = await runBin(['--config', config, '-e', 'prod', '-k', 'SERVICE_B_*', '--keep-env', '*', '--dry-run'], { runtimeDir, env });
      expect(dry.stdout).toContain('KEPT');
      expect(dry.stdout).not.toContain('VAULT_KEY');
      // A token minted elsewhere and copied into another variable: the same.
      const minted = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: vaultEnv(server.url) });
      const token = minted.stdout.trim();
      const withToken = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--keep-env', '*', '--', fixture('print-env.mjs')], { runtimeDir, env: { RWS_VAULT_URL: server.url, RWS_TOKEN: token, DEPLOY_TOKEN: token } });
      expect(withToken.exitCode, withToken.stderr).toBe(0);
      expect(withToken.stdout).not.toContain(token.split('.')[2]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a pattern within the grant that matches no key of the vault is an error naming it, nothing runs', async () => {
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_NOPE*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('error RWS_SECRET_MISSING: key pattern SERVICE_B_NOPE* matches no key of the sources');
  });

  it('--dry-run lists names through the list endpoint: no value leaves the vault', async () => {
    const before = auditLines().length;
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--dry-run', '--', 'true'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain('would inject 2 secret(s) as env: SERVICE_B_DB_URL, SERVICE_B_TOKEN');
    const events = auditLines().slice(before).map((event) => `${event.event}:${event.outcome}`);
    expect(events).toEqual(['token.generate:success', 'secret.list:success', 'token.revoke:success']);
    expectNoLeak(result.stdout, result.stderr);
  });

  it('file mode over TLS with --ca-file: the file holds the secrets and is gone after the run', async () => {
    const result = await runBin(['-e', 'prod', '--key', 'SERVICE_B_TOKEN', '--inject-as', 'file', '--ca-file', caCert, '--', 'sh', '-c', 'cat "$SECRETS_FILE"'], {
      runtimeDir,
      env: vaultEnv(tlsServer.url),
    });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(parse(result.stdout)).toEqual({ SERVICE_B_TOKEN: SECRETS.SERVICE_B_TOKEN });
    expect(wrapperDirs(runtimeDir)).toEqual([]);
  });

  it('TLS without the CA fails closed with a one-line error naming the URL', async () => {
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(tlsServer.url) });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('RWS_VAULT_TLS');
    expect(result.stderr).toContain(tlsServer.url.replace(/\/$/, ''));
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('per-key requests: list then one GET per key, with a token limited to exactly those uses', async () => {
    const before = auditLines().length;
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--per-key-requests', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ SERVICE_B_DB_URL: SECRETS.SERVICE_B_DB_URL, SERVICE_B_TOKEN: SECRETS.SERVICE_B_TOKEN });
    const events = auditLines().slice(before).map((event) => event.event);
    expect(events.filter((event) => event === 'secret.read')).toHaveLength(2);
    expect(events.filter((event) => event === 'token.revoke')).toHaveLength(2);
  });

  it('a pattern outside the API key grant is refused (403) with the environment and pattern named', async () => {
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'run-with-secrets: error RWS_VAULT_FORBIDDEN: the API key does not grant environment prod, pattern SERVICE_* (RWS_FORBIDDEN): it grants environment prod with key pattern SERVICE_B_* (hint: narrow -k/--key to within SERVICE_B_*, or ask the vault admin for an API key granting environment prod, pattern SERVICE_*)',
    );
    const other = await runBin(['-e', 'staging', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(other.stderr).toContain('RWS_VAULT_FORBIDDEN');
    expectNoLeak(result.stderr, other.stderr);
  });

  it('a typo in -e is answered with the environments the key grants', async () => {
    const result = await runBin(['-e', 'prodution', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain('error RWS_VAULT_FORBIDDEN: the API key does not grant environment prodution, pattern SERVICE_B_* (RWS_FORBIDDEN): it grants environment prod with key pattern SERVICE_B_*');
    expect(result.stderr).toContain('(hint: check -e (the key grants prod), or ask the vault admin for an API key granting environment prodution)');
  });

  it('404 says whether the key or the environment is missing', async () => {
    const key = await runBin(['-e', 'prod', '--key', 'SERVICE_B_NOPE', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(server.url) });
    expect(key.exitCode).toBe(125);
    expect(key.stderr).toMatch(/error RWS_VAULT_NOT_FOUND: environment prod of the vault at \S+ has no key SERVICE_B_NOPE \(RWS_NOT_FOUND\) \(hint: check --key SERVICE_B_NOPE; run-with-secrets keys -e prod lists the names in scope\)/);
    const ghostKey = (await makeApiKey(store, ['ghost'], ['*'])).key;
    const environment = await runBin(['-e', 'ghost', '--', fixture('print-env.mjs')], { runtimeDir, env: { RWS_VAULT_URL: server.url, RWS_API_KEY: ghostKey } });
    expect(environment.exitCode).toBe(125);
    expect(environment.stderr).toMatch(/error RWS_VAULT_NOT_FOUND: the vault at \S+ has no environment ghost \(RWS_NOT_FOUND\) \(hint: check -e: the environment does not exist on this vault\)/);
  });

  it('a vault URL with a path too many (…/api) is named as the mistake, not read as a missing environment', async () => {
    const url = `${server.url}/api`;
    const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url, { RWS_VAULT_URL: url }) });
    expect(run.exitCode).toBe(125);
    expect(run.stderr).toBe(
      `run-with-secrets: error RWS_VAULT_NOT_FOUND: the server at ${url} does not serve the vault API there (RWS_NOT_FOUND): the vault URL is wrong (hint: check --vault-url / RWS_VAULT_URL: the address secrets-server serve printed, with a path only where a proxy serves the API under one)`,
    );
    // Another web server's 404 (no secrets-server error code) says the same.
    const stub = await startStub((socket) => reply(socket, 404, '<html>Not Found</html>', { 'content-type': 'text/html' }));
    try {
      const other = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(other.exitCode).toBe(125);
      expect(other.stderr).toContain(`error RWS_VAULT_NOT_FOUND: the server at ${stub.url} does not serve the vault API there: the vault URL is wrong (hint: check --vault-url`);
    } finally {
      await stub.close();
    }
    const whoami = await runBin(['whoami'], { runtimeDir, env: vaultEnv(server.url, { RWS_VAULT_URL: url }) });
    expect(whoami.exitCode).toBe(125);
    expect(whoami.stderr).toContain(`error RWS_VAULT_NOT_FOUND: the server at ${url} has no /api/v1/auth/self (hint: check --vault-url / RWS_VAULT_URL`);
  });

  it('when one selector is refused, the token another one minted meanwhile is still revoked', async () => {
    // -k SERVICE_B_* is granted and --key SERVICE_A_KEY is not: both mint at once, the refusal
    // fails the run, and the granted selector's token must not be left live until it expires.
    for (const args of [[], ['--dry-run']]) {
      const before = auditLines().length;
      const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--key', 'SERVICE_A_KEY', ...args, '--', 'true'], { runtimeDir, env: vaultEnv(server.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toContain('error RWS_VAULT_FORBIDDEN');
      expect(result.stderr).not.toContain('RWS_REVOKE_FAILED');
      const rows = auditLines().slice(before);
      const minted = rows.filter((row) => row.event === 'token.generate' && row.outcome === 'success').map((row) => row.jti);
      const revoked = rows.filter((row) => row.event === 'token.revoke' && row.outcome === 'success').map((row) => row.jti);
      expect(minted).toHaveLength(1);
      expect(revoked).toEqual(minted);
    }
  });

  it('a wrong API key is refused (401); a malformed one before any request', async () => {
    const wrong = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir, env: vaultEnv(server.url, { RWS_API_KEY: `rws_sk_${'0'.repeat(32)}` }) });
    expect(wrong.exitCode).toBe(125);
    expect(wrong.stderr).toContain('RWS_VAULT_AUTH');
    const stub = await startStub((socket) => json(socket, 500, {}));
    try {
      const malformed = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url, { RWS_API_KEY: '  rws_sk_SHOUTING  ' }) });
      expect(malformed.exitCode).toBe(125);
      expect(malformed.stderr).toMatch(/RWS_CREDENTIAL_INVALID: .*RWS_API_KEY.*\(hint: expected 'rws_sk_' followed by 32 lowercase hex/);
      expect(malformed.stderr).not.toContain('SHOUTING');
      expect(stub.requests).toHaveLength(0);
    } finally {
      await stub.close();
    }
    const padded = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url, { RWS_API_KEY: `  ${apiKey}\n` }) });
    expect(padded.exitCode, padded.stderr).toBe(0);
  });

  it('an expired API key is refused (401) with the hint to regenerate it', { timeout: 45_000 }, async () => {
    const expiresAt = Date.now() + 12_000;
    const expiring = (await makeApiKey(store, ['prod'], ['SERVICE_B_*'], ['--expires-at', new Date(expiresAt).toISOString()])).key;
    const works = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url, { RWS_API_KEY: expiring }) });
    expect(works.exitCode, works.stderr).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now() + 500)));
    const expired = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url, { RWS_API_KEY: expiring }) });
    expect(expired.exitCode).toBe(125);
    expect(expired.stderr).toMatch(/RWS_VAULT_AUTH: .*hint: .*regenerate|RWS_VAULT_AUTH: .*\(hint: [^)]*(new|regenerat)/i);
    expect(expired.stderr).not.toContain(expiring);
  });

  it('no credential: names the variables to set', async () => {
    const result = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir, env: { RWS_VAULT_URL: server.url } });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/RWS_CREDENTIAL_MISSING: .*hint: run-with-secrets login, or set RWS_API_KEY or RWS_API_KEY_FILE/);
  });

  it('RWS_API_KEY_FILE must be private; RWS_VAULT_URL_FILE works', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rws-cred-'));
    try {
      const keyFile = path.join(dir, 'key');
      await writeFile(keyFile, `${apiKey}\n`, { mode: 0o644 });
      await chmod(keyFile, 0o644);
      const urlFile = path.join(dir, 'url');
      await writeFile(urlFile, `${server.url}\n`);
      const open = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: { RWS_VAULT_URL_FILE: urlFile, RWS_API_KEY_FILE: keyFile } });
      expect(open.exitCode).toBe(125);
      expect(open.stderr).toMatch(/RWS_CREDENTIAL_FILE_MODE: .*readable by group or others.*chmod 600/);
      // Kubernetes' fsGroup makes a mounted secret 0440 whatever defaultMode says: the hint says what works there.
      expect(open.stderr).toContain('in Kubernetes, where fsGroup makes secret files 0440, set RWS_API_KEY from a secretKeyRef instead');
      await chmod(keyFile, 0o600);
      const ok = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: { RWS_VAULT_URL_FILE: urlFile, RWS_API_KEY_FILE: keyFile } });
      expect(ok.exitCode, ok.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an explicit --env-file means the vault is not used, even when configured', async () => {
    const dir = makeRuntimeDir();
    try {
      const envFile = path.join(dir, '.env');
      await writeFile(envFile, 'LOCAL=1\n', { mode: 0o600 });
      const before = auditLines().length;
      const result = await runBin(['--env-file', envFile, '--', fixture('print-env.mjs')], { runtimeDir: dir, env: vaultEnv(server.url, { RWS_ENVIRONMENT: 'prod' }) });
      expect(JSON.parse(result.stdout).LOCAL).toBe('1');
      expect(auditLines().length).toBe(before);
    } finally {
      removeDir(dir);
    }
  });

  it('http:// to a non-loopback host is refused without any connection', async () => {
    const result = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir, env: vaultEnv('http://192.0.2.10:8200') });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain('RWS_VAULT_INSECURE_URL');
  });
});

describe('when the vault misbehaves', () => {
  /** What a vault answers to a mint for -e prod -k 'SERVICE_B_*'. */
  const stubMinted = () => ({ token: 'eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln', token_type: 'Bearer', jti: 'j1', expires_at: new Date(Date.now() + 60_000).toISOString(), scope: { environment: 'prod', key_pattern: 'SERVICE_B_*', permissions: ['read'] }, usage_limit: 1 });

  it('server down: retries, then exit 125 naming the URL', async () => {
    const stub = await startStub(() => undefined);
    const url = stub.url;
    await stub.close();
    const result = await runBin(['-e', 'prod', '-v', '--retries', '2', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(url) });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/error RWS_VAULT_UNREACHABLE: .*127\.0\.0\.1/);
    expect(result.stderr.match(/attempt \d\/3/g)?.length).toBe(3);
  });

  it('a server that dies mid-request (connection closed without an answer) fails cleanly', async () => {
    const stub = await startStub((socket) => socket.destroy());
    try {
      const result = await runBin(['-e', 'prod', '--retries', '1', '--inject-as', 'file', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(stub.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toMatch(/RWS_VAULT_(UNREACHABLE|UNAVAILABLE)/);
      expect(wrapperDirs(runtimeDir)).toEqual([]);
    } finally {
      await stub.close();
    }
  });

  it('the real server killed while the app runs does not disturb the app', async () => {
    const ownStore = await makeStore({ prod: SECRETS });
    const ownKey = (await makeApiKey(ownStore, ['prod'], ['SERVICE_B_*'])).key;
    const own = await startServer(ownStore);
    const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'sh', '-c', `kill -KILL ${own.process.pid}; echo "$SERVICE_B_TOKEN" | wc -c`], { runtimeDir, env: { RWS_VAULT_URL: own.url, RWS_API_KEY: ownKey } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(Number(result.stdout.trim())).toBe(SECRETS.SERVICE_B_TOKEN.length + 1);
    await own.stop();
    await ownStore.cleanup();
  });

  it.each([
    ['invalid JSON', (socket: import('node:net').Socket) => reply(socket, 201, '{not json', { 'content-type': 'application/json' })],
    ['wrong shape', (socket: import('node:net').Socket) => json(socket, 201, { token: 42 })],
    ['HTML error page', (socket: import('node:net').Socket) => reply(socket, 200, '<html>oops</html>', { 'content-type': 'text/html' })],
  ])('a malformed answer (%s) is an error, not a crash', async (_name, respond) => {
    const stub = await startStub(respond);
    try {
      const result = await runBin(['-e', 'prod', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(stub.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toContain('RWS_VAULT_BAD_RESPONSE');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).not.toContain('oops');
    } finally {
      await stub.close();
    }
  });

  it('a batch answer with a secret outside the request fails closed: nothing runs', async () => {
    const stub = await startStub((socket, request) => {
      if (request.path.endsWith('/tokens/generate')) {
        json(socket, 201, stubMinted());
      } else if (request.path.endsWith('/secrets/batch')) {
        json(socket, 200, { environment: 'prod', secrets: { SERVICE_B_X: 'x', EVIL_EXTRA: 'injected' } });
      } else {
        reply(socket, 204, '');
      }
    });
    try {
      const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(stub.url) });
      expect(result.exitCode).toBe(125);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(/RWS_VAULT_BAD_RESPONSE: .*EVIL_EXTRA does not match SERVICE_B_\*/);
      expect(result.stderr).not.toContain('injected');
      // The token is revoked even though the answer was refused.
      expect(stub.requests.map((request) => request.path)).toEqual(['/api/v1/vault/tokens/generate', '/api/v1/vault/secrets/batch', '/api/v1/vault/tokens/revoke']);
    } finally {
      await stub.close();
    }
  });

  it('a revoke whose answer drips for ever does not hold the run: the child starts after 3 × --timeout + 1 s, with RWS_REVOKE_FAILED', async () => {
    const stub = await startStub((socket, request) => {
      if (request.path.endsWith('/tokens/generate')) {
        json(socket, 201, stubMinted());
      } else if (request.path.endsWith('/secrets/batch')) {
        json(socket, 200, { environment: 'prod', secrets: { SERVICE_B_X: 'drip-test-value' } });
      } else {
        // A byte every 200 ms: each within --timeout, so undici's own (idle) timeouts never fire.
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{');
        const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(' ')), 200);
        socket.on('close', () => clearInterval(timer));
      }
    });
    try {
      const started = Date.now();
      const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--timeout', '0.5', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(stub.url) });
      expect(result.exitCode).toBe(0);
      expect((JSON.parse(result.stdout) as Record<string, string>).SERVICE_B_X).toBe('drip-test-value');
      expect(result.stderr).toMatch(/warning RWS_REVOKE_FAILED: could not revoke token j1 \(RWS_VAULT_TIMEOUT\)/);
      expect(result.stderr).not.toContain('drip-test-value');
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await stub.close();
    }
  });

  it('keys and --dry-run refuse a list holding names outside the pattern asked for', async () => {
    const stub = await startStub((socket, request) => {
      if (request.path.endsWith('/tokens/generate')) {
        json(socket, 201, stubMinted());
      } else if (request.path.startsWith('/api/v1/vault/prod')) {
        json(socket, 200, { environment: 'prod', keys: ['SERVICE_B_X', 'LD_PRELOAD', 'OTHER_APP_KEY'] });
      } else {
        reply(socket, 204, '');
      }
    });
    try {
      const keys = await runBin(['keys', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(keys.stdout).toBe('');
      expect(keys.exitCode).toBe(125);
      expect(keys.stderr).toMatch(/RWS_VAULT_BAD_RESPONSE: .*LD_PRELOAD does not match SERVICE_B_\*/);
      const dryRun = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--dry-run', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(dryRun.exitCode).toBe(125);
      expect(dryRun.stderr).toContain('RWS_VAULT_BAD_RESPONSE');
      expect(stub.requests.filter((request) => request.method === 'GET').map((request) => request.path)).toEqual(['/api/v1/vault/prod?pattern=SERVICE_B_*', '/api/v1/vault/prod?pattern=SERVICE_B_*']);
    } finally {
      await stub.close();
    }
  });

  it('a vault that echoes the API key back (a refusal naming it as a pattern, a key named after it) never gets it printed by check or whoami', async () => {
    const stub = await startStub((socket, request) => {
      const echoed = (request.headers.authorization ?? '').replace(/^Bearer /, '');
      if (request.path === '/healthz') json(socket, 200, { status: 'ok' });
      else if (request.path === '/api/v1/auth/self') json(socket, 200, { id: 'k1', name: echoed, environments: ['prod'], key_patterns: [echoed], expires_at: null, admin: false });
      else json(socket, 403, { error: { code: 'RWS_FORBIDDEN', message: `not granted; it grants environments prod with key patterns ${echoed}` } });
    });
    try {
      const check = await runBin(['check', '-e', 'prod'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(check.stdout).toContain('✗ token: ');
      expect(check.stdout).toContain('rws_sk_[redacted]');
      const whoami = await runBin(['whoami'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(whoami.exitCode).toBe(0);
      expect(whoami.stdout).toContain('rws_sk_[redacted]');
      for (const text of [check.stdout, check.stderr, whoami.stdout, whoami.stderr]) expect(text).not.toContain(apiKey);
    } finally {
      await stub.close();
    }
  });

  it('a vault that echoes the API key as a secret name (keys) or as the key id (login, then logout) never gets it printed', async () => {
    // `rws_sk_` + hex is a valid variable name and a valid key id: only the redaction keeps it off stdout.
    let sent = '';
    const stub = await startStub((socket, request) => {
      const credential = (request.headers.authorization ?? '').replace(/^Bearer /, '');
      if (credential.startsWith('rws_sk_')) sent = credential;
      if (request.path === '/api/v1/auth/self') json(socket, 200, { id: sent, name: 'echo', environments: ['prod'], key_patterns: ['*'], expires_at: null, admin: false });
      else if (request.path.endsWith('/tokens/generate')) json(socket, 201, { ...stubMinted(), scope: { environment: 'prod', key_pattern: '*', permissions: ['read'] } });
      else if (request.path.startsWith('/api/v1/vault/prod?')) json(socket, 200, { environment: 'prod', keys: ['SERVICE_B_X', sent] });
      else reply(socket, 204, '');
    });
    const home = path.join(runtimeDir, `home-${randomUUID()}`);
    try {
      const keys = await runBin(['keys', '-e', 'prod', '-k', '*'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(keys.exitCode, keys.stderr).toBe(0);
      expect(keys.stdout).toBe('SERVICE_B_X\nrws_sk_[redacted]');
      const login = await runBin(['login', '--vault-url', stub.url], { runtimeDir, env: { HOME: home }, input: `${apiKey}\n` });
      expect(login.exitCode, login.stderr).toBe(0);
      const logout = await runBin(['logout', '--vault-url', stub.url], { runtimeDir, env: { HOME: home } });
      expect(logout.exitCode, logout.stderr).toBe(0);
      expect(logout.stdout).toContain('removed the stored key rws_sk_[redacted] for');
      for (const text of [keys.stdout, keys.stderr, login.stdout, login.stderr, logout.stdout, logout.stderr]) expect(text).not.toContain(apiKey);
    } finally {
      await stub.close();
      await rm(home, { recursive: true, force: true });
    }
  });

  it('a vault that echoes the API key upper-cased as its error code (which the code grammar lets through) never gets it printed', async () => {
    const stub = await startStub((socket, request) => {
      // RWS_SK_0123…: upper-case hex is the same key to anyone who reads it.
      const code = (request.headers.authorization ?? '').replace(/^Bearer /, '').toUpperCase();
      json(socket, request.path === '/api/v1/auth/self' ? 500 : 401, { error: { code, message: 'x' } });
    });
    try {
      const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--retries', '0', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(run.exitCode).toBe(125);
      expect(run.stderr).toContain('RWS_VAULT_AUTH');
      const json = await runBin(['--log-format', 'json', '-e', 'prod', '-k', 'SERVICE_B_*', '--retries', '0', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url) });
      const whoami = await runBin(['whoami', '--retries', '0'], { runtimeDir, env: vaultEnv(stub.url) });
      const check = await runBin(['check', '-e', 'prod', '--retries', '0'], { runtimeDir, env: vaultEnv(stub.url) });
      for (const text of [run.stderr, json.stderr, whoami.stdout, whoami.stderr, check.stdout, check.stderr]) expect(text.toLowerCase()).not.toContain(apiKey);
    } finally {
      await stub.close();
    }
  });
});

describe('a slow vault on a terminal', () => {
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln';
  const slowStub = () =>
    startStub((socket, request) => {
      if (request.path.endsWith('/tokens/generate')) {
        const minted = { token, token_type: 'Bearer', jti: 'j1', expires_at: new Date(Date.now() + 60_000).toISOString(), scope: { environment: 'prod', key_pattern: 'SERVICE_B_*', permissions: ['read'] }, usage_limit: 1 };
        setTimeout(() => json(socket, 201, minted), 1600);
      } else if (request.path.endsWith('/secrets/batch')) {
        json(socket, 200, { environment: 'prod', secrets: { SERVICE_B_X: 'x-value' } });
      } else if (request.path.split('?')[0] === '/api/v1/vault/prod') {
        json(socket, 200, { environment: 'prod', keys: ['SERVICE_B_X'] });
      } else if (request.path === '/healthz') {
        json(socket, 200, { status: 'ok' });
      } else {
        reply(socket, 204, '');
      }
    });

  it('shows what it waits for after a second, on one line that is erased when the answer comes', async () => {
    const stub = await slowStub();
    try {
      const inner = `"${BIN}" -e prod -k 'SERVICE_B_*' -- sh -c 'echo child-ran'`;
      const result = await execa('script', ['-qfec', inner, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, { ...vaultEnv(stub.url), TERM: 'xterm', NO_COLOR: '1' }) });
      expect(result.exitCode, result.stdout).toBe(0);
      const waiting = `\r\u001b[Krun-with-secrets: waiting for the vault at ${stub.url} (POST /api/v1/vault/tokens/generate, attempt 1/3)`;
      expect(result.stdout).toContain(waiting);
      // Erased before the child writes anything: the child's line starts a clean line.
      expect(result.stdout).toContain(`${waiting}\r\u001b[Kchild-ran`);
    } finally {
      await stub.close();
    }
  });

  it('also for keys, check and token generate', async () => {
    const stub = await slowStub();
    try {
      const waiting = `\r\u001b[Krun-with-secrets: waiting for the vault at ${stub.url} (POST /api/v1/vault/tokens/generate, attempt 1/3)`;
      // `token generate` refuses to print a token to a terminal: its stdout goes to a file here.
      for (const command of [`keys -e prod -k 'SERVICE_B_*'`, `check -e prod -k 'SERVICE_B_*'`, `token generate -e prod -k 'SERVICE_B_*' > /dev/null`]) {
        const result = await execa('script', ['-qfec', `"${BIN}" ${command}`, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, { ...vaultEnv(stub.url), TERM: 'xterm', NO_COLOR: '1' }) });
        expect(result.exitCode, `${command}: ${result.stdout}`).toBe(0);
        expect(result.stdout, command).toContain(`${waiting}\r\u001b[K`);
      }
    } finally {
      await stub.close();
    }
  });

  it('names a request as the -v lines do, with a key name the vault sent that is the API key redacted', async () => {
    const stub = await startStub((socket, request) => {
      const minted = { token, token_type: 'Bearer', jti: 'j1', expires_at: new Date(Date.now() + 60_000).toISOString(), scope: { environment: 'prod', key_pattern: '*', permissions: ['read'] }, usage_limit: 2 };
      if (request.path.endsWith('/tokens/generate')) json(socket, 201, minted);
      else if (request.path.startsWith('/api/v1/vault/prod?')) json(socket, 200, { environment: 'prod', keys: [apiKey] });
      else if (request.path === `/api/v1/vault/prod/${apiKey}`) setTimeout(() => json(socket, 200, { environment: 'prod', key: apiKey, value: 'v' }), 1600);
      else reply(socket, 204, '');
    });
    try {
      const result = await execa('script', ['-qfec', `"${BIN}" -e prod --per-key-requests -- true`, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, { ...vaultEnv(stub.url), TERM: 'xterm', NO_COLOR: '1' }) });
      expect(result.stdout).toContain(`waiting for the vault at ${stub.url} (GET /api/v1/vault/prod/rws_sk_[redacted], attempt 1/3)`);
      expect(result.stdout).not.toContain(apiKey);
    } finally {
      await stub.close();
    }
  });

  it('never on a pipe', async () => {
    const stub = await slowStub();
    try {
      const result = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: vaultEnv(stub.url) });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stderr).toBe('');
    } finally {
      await stub.close();
    }
  });
});

describe('a stop signal between mint and revoke', () => {
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln';
  const minted = () => ({ token, token_type: 'Bearer', jti: 'j1', expires_at: new Date(Date.now() + 60_000).toISOString(), scope: { environment: 'prod', key_pattern: 'SERVICE_B_*', permissions: ['read'] }, usage_limit: 1 });
  const paths = (stub: { requests: Array<{ path: string }> }) => stub.requests.map((request) => request.path.replace('/api/v1/vault/', ''));

  async function until(condition: () => boolean): Promise<void> {
    for (let attempt = 0; attempt < 400 && !condition(); attempt++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(condition()).toBe(true);
  }

  it.each([
    ['while the batch is in flight', 'secrets/batch', ['tokens/generate', 'secrets/batch', 'tokens/revoke']],
    ['while the mint is in flight', 'tokens/generate', ['tokens/generate', 'tokens/revoke']],
  ])('%s: the token is revoked before the wrapper dies of the signal', async (_when, stopAt, expected) => {
    let releaseMint: () => void = () => undefined;
    const stub = await startStub((socket, request) => {
      if (request.path.endsWith('/tokens/generate')) {
        // Held until the signal has been sent when the test stops the run during the mint.
        if (stopAt === 'tokens/generate') releaseMint = () => json(socket, 201, minted());
        else json(socket, 201, minted());
      } else if (request.path.endsWith('/tokens/revoke')) {
        reply(socket, 204, '');
      }
      // The batch is never answered: the run would wait for its timeout.
    });
    try {
      const run = runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '-v', '--timeout', '20', '--', fixture('print-env.mjs')], { runtimeDir, env: vaultEnv(stub.url) });
      await until(() => paths(stub).includes(stopAt));
      const started = Date.now();
      run.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));
      releaseMint();
      const result = await run;
      expect(result.signal).toBe('SIGTERM');
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('revoked token j1');
      expect(paths(stub)).toEqual(expected);
    } finally {
      await stub.close();
    }
  });
});

describe('token, keys and check commands', () => {
  it('token generate prints a token to a pipe; it works until token revoke kills it', async () => {
    const generated = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--usage-limit', '2', '--json'], { runtimeDir, env: vaultEnv(server.url) });
    expect(generated.exitCode, generated.stderr).toBe(0);
    const minted = JSON.parse(generated.stdout) as { token: string; usage_limit: number; key_pattern: string };
    expect(minted).toMatchObject({ usage_limit: 2, key_pattern: 'SERVICE_B_*' });
    const withToken = { RWS_VAULT_URL: server.url, RWS_TOKEN: minted.token };
    const first = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', fixture('print-env.mjs')], { runtimeDir, env: withToken });
    expect(JSON.parse(first.stdout).SERVICE_B_TOKEN).toBe(SECRETS.SERVICE_B_TOKEN);
    const revoked = await runBin(['token', 'revoke'], { runtimeDir, env: withToken });
    expect(revoked.exitCode, revoked.stderr).toBe(0);
    const second = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: withToken });
    expect(second.exitCode).toBe(125);
    expect(second.stderr).toContain('RWS_VAULT_AUTH');
    expect(second.stderr + first.stderr + revoked.stdout + revoked.stderr).not.toContain(minted.token);
  });

  it('token --help gives the defaults token generate uses (5 minutes, its own subject), not those of a run', async () => {
    const help = await runBin(['token', '--help'], { runtimeDir, env: vaultEnv(server.url) });
    expect(help.stdout).toMatch(/--ttl +Lifetime of the minted token in minutes \(default 5\)/);
    expect(help.stdout).toContain('(default token-generate@$USER)');
    expect(help.stdout).not.toMatch(/--ttl[^\n]*\(default 1\)/);
    const before = Date.now();
    const generated = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--json'], { runtimeDir, env: vaultEnv(server.url) });
    expect(generated.exitCode, generated.stderr).toBe(0);
    const expiresAt = Date.parse((JSON.parse(generated.stdout) as { expires_at: string }).expires_at);
    // Dates are whole seconds: five minutes after a moment within the command's run.
    expect(expiresAt).toBeGreaterThanOrEqual(before - 1000 + 5 * 60_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 5 * 60_000);
    for (const command of ['keys', 'check']) {
      const own = await runBin([command, '--help'], { runtimeDir, env: vaultEnv(server.url) });
      expect(own.stdout).toContain(`(default ${command}@$USER)`);
    }
  });

  it('keys, check and token generate name the user in their audit subject when USER and LOGNAME are unset (cron, systemd), as a run does', async () => {
    const { userInfo } = await import('node:os');
    const name = userInfo().username;
    for (const [args, subject] of [
      [['keys', '-e', 'prod', '-k', 'SERVICE_B_*'], `keys@${name}`],
      [['check', '-e', 'prod', '-k', 'SERVICE_B_*'], `check@${name}`],
      [['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*'], `token-generate@${name}`],
    ] as const) {
      const before = auditLines().length;
      // baseEnv sets neither USER nor LOGNAME.
      const result = await runBin([...args], { runtimeDir, env: vaultEnv(server.url) });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(auditLines().slice(before)[0]!.subject).toBe(subject);
    }
  });

  it('--token warns that argv is visible', async () => {
    const generated = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: vaultEnv(server.url) });
    const token = generated.stdout.trim();
    const result = await runBin(['--token', token, '-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: { RWS_VAULT_URL: server.url } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).toContain('RWS_TOKEN_IN_ARGV');
    expect(result.stderr).not.toContain(token);
  });

  it('keys lists names in scope, never values', async () => {
    const result = await runBin(['keys', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.split('\n')).toEqual(['SERVICE_B_DB_URL', 'SERVICE_B_TOKEN']);
    expectNoLeak(result.stdout, result.stderr);
  });

  it('keys without -k lists the names the API key grants, as the hint of a 404 tells (a token for * is refused to it)', async () => {
    const result = await runBin(['keys', '-e', 'prod'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.split('\n')).toEqual(['SERVICE_B_DB_URL', 'SERVICE_B_TOKEN']);
    const typo = await runBin(['keys', '-e', 'prodution'], { runtimeDir, env: vaultEnv(server.url) });
    expect(typo.exitCode).toBe(125);
    expect(typo.stderr).toContain('(hint: check -e (the key grants prod)');
  });

  it('check walks every step with ✓ and stops at the first ✗', async () => {
    const good = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_*', '--ca-file', caCert], { runtimeDir, env: vaultEnv(tlsServer.url) });
    expect(good.exitCode, good.stdout + good.stderr).toBe(0);
    expect(good.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✓ server', '✓ token', '✓ scope']);
    expect(good.stdout).toContain('2 key(s) readable in prod with SERVICE_B_*');
    const bad = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: vaultEnv(tlsServer.url) });
    expect(bad.exitCode).toBe(125);
    expect(bad.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✗ server']);
    expectNoLeak(good.stdout, bad.stdout);
    const withPassword = await runBin(['check', '-e', 'prod'], { runtimeDir, env: vaultEnv(server.url.replace('http://', 'http://user:pa55word@')) });
    expect(withPassword.exitCode).toBe(125);
    expect(withPassword.stdout).toContain('RWS_VAULT_INSECURE_URL');
    expect(withPassword.stdout + withPassword.stderr).not.toContain('pa55word');
  });

  it('check with a ready-made token says that its scope line spends one use of it, and spends exactly that', async () => {
    const generated = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--usage-limit', '2', '--json'], { runtimeDir, env: vaultEnv(server.url) });
    expect(generated.exitCode, generated.stderr).toBe(0);
    const { token } = JSON.parse(generated.stdout) as { token: string };
    const withToken = { RWS_VAULT_URL: server.url, RWS_TOKEN: token };
    const checked = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_*'], { runtimeDir, env: withToken });
    expect(checked.exitCode, checked.stdout + checked.stderr).toBe(0);
    expect(checked.stdout).toContain('✓ token: using the given token; checking its scope spends one use of it');
    expect(checked.stdout).toContain('✓ scope: 2 key(s) readable in prod with SERVICE_B_* (one use of the token spent)');
    expect(checked.stdout + checked.stderr).not.toContain(token);
    // Two uses: the check's, then the run's; a third is refused.
    const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: withToken });
    expect(run.exitCode, run.stderr).toBe(0);
    const spent = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir, env: withToken });
    expect(spent.exitCode).toBe(125);
    expect(spent.stderr).toContain('RWS_VAULT_AUTH');
  });

  it('check with a ready-made token and no -k checks * as the run asks for it: a token scoped narrower is a ✗, as the run fails', async () => {
    const generated = await runBin(['token', 'generate', '-e', 'prod', '-k', 'SERVICE_B_*', '--usage-limit', '3', '--json'], { runtimeDir, env: vaultEnv(server.url) });
    expect(generated.exitCode, generated.stderr).toBe(0);
    const { token } = JSON.parse(generated.stdout) as { token: string };
    const withToken = { RWS_VAULT_URL: server.url, RWS_TOKEN: token };
    const run = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir, env: withToken });
    expect(run.exitCode).toBe(125);
    expect(run.stderr).toContain('RWS_VAULT_FORBIDDEN');
    const checked = await runBin(['check', '-e', 'prod'], { runtimeDir, env: withToken });
    expect(checked.exitCode, checked.stdout).toBe(125);
    expect(checked.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✓ server', '✓ token', '✗ scope']);
    expect(checked.stdout).toContain('[RWS_VAULT_FORBIDDEN]');
    expect(checked.stdout + checked.stderr).not.toContain(token);
  });

  it('check checks every -k a run of that selection mints for: a second pattern outside the grant is a ✗, as the run fails', async () => {
    const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_*', '-k', 'SERVICE_A_*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url) });
    expect(run.exitCode).toBe(125);
    expect(run.stderr).toContain('RWS_VAULT_FORBIDDEN');
    const result = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_*', '-k', 'SERVICE_A_*'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stdout).toBe(125);
    expect(result.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✓ server', '✓ token', '✓ scope', '✗ token']);
    expect(result.stdout).toContain('2 key(s) readable in prod with SERVICE_B_*');
    expect(result.stdout).toContain('[RWS_VAULT_FORBIDDEN]');
    const both = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_DB*', '-k', 'SERVICE_B_TOK*'], { runtimeDir, env: vaultEnv(server.url) });
    expect(both.exitCode, both.stdout).toBe(0);
    expect(both.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✓ server', '✓ token', '✓ scope', '✓ token', '✓ scope']);
    expectNoLeak(result.stdout, both.stdout);
  });

  it('check fails a pattern that matches no key, as the run does (RWS_SECRET_MISSING), unless --allow-empty', async () => {
    const run = await runBin(['-e', 'prod', '-k', 'SERVICE_B_TYPO*', '--', 'true'], { runtimeDir, env: vaultEnv(server.url) });
    expect(run.exitCode).toBe(125);
    expect(run.stderr).toContain('RWS_SECRET_MISSING');
    const result = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_TYPO*'], { runtimeDir, env: vaultEnv(server.url) });
    expect(result.exitCode, result.stdout).toBe(125);
    expect(result.stdout.split('\n').map((line) => line.split(':')[0])).toEqual(['✓ config', '✓ credential', '✓ server', '✓ token', '✗ scope']);
    expect(result.stdout).toContain('key pattern SERVICE_B_TYPO* matches no key of the sources [RWS_SECRET_MISSING]');
    const allowed = await runBin(['check', '-e', 'prod', '-k', 'SERVICE_B_TYPO*', '--allow-empty'], { runtimeDir, env: vaultEnv(server.url) });
    expect(allowed.exitCode, allowed.stdout).toBe(0);
    expect(allowed.stdout).toContain('0 key(s) readable in prod with SERVICE_B_TYPO*');
  });
});

describe('config file', () => {
  it('profiles, ${VAR} references and the credential rule', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rws-config-'));
    try {
      const config = path.join(dir, 'config.yaml');
      await writeFile(config, `vault_url: \${VAULT}\nenvironment: staging\nkey_patterns: ['SERVICE_B_*']\ncredentials:\n  api_key: \${MY_KEY}\nprofiles:\n  prod:\n    environment: prod\n`, { mode: 0o644 });
      const env = { VAULT: server.url, MY_KEY: apiKey };
      const result = await runBin(['--config', config, '--profile', 'prod', '--', fixture('print-env.mjs')], { runtimeDir, env });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(Object.keys(JSON.parse(result.stdout)).filter((name) => name.startsWith('SERVICE_')).sort()).toEqual(['SERVICE_B_DB_URL', 'SERVICE_B_TOKEN']);

      await writeFile(config, `vault_url: ${server.url}\nenvironment: prod\ncredentials:\n  api_key: ${apiKey}\n`);
      await chmod(config, 0o644);
      const shared = await runBin(['--config', config, '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir });
      expect(shared.exitCode).toBe(125);
      expect(shared.stderr).toMatch(/RWS_CREDENTIAL_FILE_MODE: .*holds an API key/);
      expect(shared.stderr).not.toContain(apiKey);
      await chmod(config, 0o600);
      const private_ = await runBin(['--config', config, '-k', 'SERVICE_B_*', '--', 'true'], { runtimeDir });
      expect(private_.exitCode, private_.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['unknown key', 'vault_url: http://127.0.0.1:1\nvault_ulr: x\n', /RWS_CONFIG_INVALID: unknown setting vault_ulr/],
    ['unset reference', 'vault_url: ${NOPE_NOT_SET}\n', /RWS_CONFIG_INVALID: .*\$\{NOPE_NOT_SET\}, which is not set/],
    ['wrong type', 'timeout: soon\n', /RWS_CONFIG_INVALID: .*timeout must be a number/],
    ['not a mapping', '- a\n- b\n', /RWS_CONFIG_INVALID: .*must be a mapping/],
    ['bad YAML', 'a: [1, 2\n', /RWS_CONFIG_INVALID: .*not valid YAML/],
    ['duplicate key', 'environment: a\nenvironment: b\n', /RWS_CONFIG_INVALID/],
    ['unknown profile key', 'profiles:\n  dev:\n    profiles: {}\n', /RWS_CONFIG_INVALID: unknown setting profiles\.dev\.profiles/],
  ])('a hostile config (%s) is a one-line error naming the problem', async (_name, text, message) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rws-config-'));
    try {
      const config = path.join(dir, 'config.yaml');
      await writeFile(config, text, { mode: 0o600 });
      const result = await runBin(['--config', config, '-e', 'prod', '--', 'true'], { runtimeDir });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
