// How the server starts and fails: TLS with a certificate made here (openssl CLI), refusals at
// start, an unwritable audit log (503, fail closed), and a file encrypted by the real sops.
import { execFile } from 'node:child_process';
import { copyFile, chmod, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, cli, generate, makeApiKey, makeStore, startServer, type TestStore, tlsAgent, token } from '../helpers/server.js';

const FIXTURES = fileURLToPath(new URL('../../fixtures/sops/sops-age/', import.meta.url));
let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'serve-secret-value' } });
  apiKey = (await makeApiKey(store, ['production', 'fixture'], ['*'])).key;
});
afterAll(async () => {
  await store?.cleanup();
});

describe('TLS', () => {
  it('serves HTTPS with a self-signed certificate', async () => {
    const cert = path.join(store.root, 'cert.pem');
    const key = path.join(store.root, 'key.pem');
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const server = await startServer(store, ['--tls-cert', cert, '--tls-key', key]);
    try {
      expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const dispatcher = tlsAgent(await readFile(cert, 'utf8'));
      const t = (await generate(server, apiKey, { subject: 'tls', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, dispatcher)).body.token;
      const reply = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t, dispatcher });
      expect(reply.body.value).toBe('serve-secret-value');
      // Without trusting the certificate the client refuses to talk.
      await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
      await dispatcher.close();
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('TLS on an address other than loopback', () => {
  it('serves HTTPS on 0.0.0.0 without --insecure-listen, and still refuses plain HTTP there', async () => {
    const cert = path.join(store.root, 'any-cert.pem');
    const key = path.join(store.root, 'any-key.pem');
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
    // The README's own example for a team was refused as "plain HTTP on 0.0.0.0".
    const server = await startServer(store, ['--host', '0.0.0.0', '--tls-cert', cert, '--tls-key', key]);
    try {
      expect(server.url).toMatch(/^https:\/\/0\.0\.0\.0:\d+$/);
      const dispatcher = tlsAgent(await readFile(cert, 'utf8'));
      const url = server.url.replace('0.0.0.0', '127.0.0.1');
      expect((await call(`${url}/healthz`, { dispatcher })).status).toBe(200);
      await dispatcher.close();
    } finally {
      expect(await server.stop()).toBe(0);
    }
    const plain = await cli(['serve', '--store', store.dir, '--host', '0.0.0.0', '--port', '0']);
    expect(plain.exitCode).toBe(2);
    expect(plain.stderr).toContain('refusing to serve secrets over plain HTTP on 0.0.0.0');
  });
});

describe('refusals at start', () => {
  it('refuses plain HTTP on a non-loopback address', async () => {
    const result = await cli(['serve', '--store', store.dir, '--host', '0.0.0.0', '--port', '0']);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain('refusing to serve secrets over plain HTTP on 0.0.0.0');
  });

  it('refuses a JWT secret shorter than 32 bytes, and uses VANTA_JWT_SECRET_KEY when set', async () => {
    const weak = await cli(['serve', '--store', store.dir, '--port', '0'], { env: { VANTA_JWT_SECRET_KEY: 'too-short-secret' } });
    expect(weak.exitCode).toBe(1);
    expect(weak.stderr).toContain('RWS_JWT_SECRET_WEAK');
    expect(weak.stderr).not.toContain('too-short-secret');
    const secret = 'an-environment-secret-of-more-than-32-bytes';
    const server = await startServer(store, [], { VANTA_JWT_SECRET_KEY: secret });
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      const { jwtVerify } = await import('jose');
      await expect(jwtVerify(t, new TextEncoder().encode(secret))).resolves.toBeDefined();
    } finally {
      await server.stop();
    }
  });

  it('refuses to start when the audit log cannot be opened', async () => {
    const result = await cli(['serve', '--store', store.dir, '--port', '0', '--audit-log', path.join(store.root, 'missing-dir', 'audit.log')]);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).not.toContain('listening');
  });

  it('lets a second server serve the same store, with one state', async () => {
    const first = await startServer(store);
    const second = await startServer(store);
    try {
      const t = await token(first, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 2 });
      const read = (server: { url: string }) => call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      expect((await read(second)).status).toBe(200);
      expect((await read(first)).status).toBe(200);
      expect((await read(second)).body.error.code).toBe('RWS_TOKEN_EXHAUSTED');
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  });

  it('refuses a FIFO as SOPS_AGE_KEY_FILE at once instead of waiting for a writer before the ready line', async () => {
    const fifo = path.join(store.root, 'age-key.fifo');
    await promisify(execFile)('mkfifo', [fifo]);
    const result = await cli(['serve', '--store', store.dir, '--port', '0'], { env: { SOPS_AGE_KEY_FILE: fifo } });
    expect(result.exitCode).toBe(1);
    expect(result.stdout).not.toContain('listening');
    expect(result.stderr).toBe(`secrets-server: error RWS_SOPS_NO_IDENTITY: SOPS_AGE_KEY_FILE ${fifo} is not a regular file (hint: give SOPS_AGE_KEY_FILE the key file itself, not a directory, pipe or device)\n`);
  }, 10_000);

  it('refuses a store directory others can enter', async () => {
    await chmod(store.dir, 0o755);
    try {
      const result = await cli(['serve', '--store', store.dir, '--port', '0']);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain('chmod 700');
    } finally {
      await chmod(store.dir, 0o700);
    }
  });
});

describe('audit failure', () => {
  it('answers 503 and serves nothing when the audit line cannot be written', async () => {
    const good = await startServer(store);
    const t = await token(good, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
    await good.stop();
    const server = await startServer(store, ['--audit-log', '/dev/full']);
    try {
      const read = await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
      expect(read.status).toBe(503);
      expect(read.body).toEqual({ error: { code: 'RWS_AUDIT_UNAVAILABLE', message: expect.any(String) } });
      expect(read.text).not.toContain('serve-secret-value');
      const issued = await generate(server, apiKey, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect(issued.status).toBe(503);
      expect(issued.body.token).toBeUndefined();
      // Every credentialed request is refused: a monitor is told so (it said 200).
      expect((await call(`${server.url}/healthz`)).status).toBe(503);
      // Two refusals, one line: the file, the errno in words, the hint (it said `AuditSinkError
      // RWS_AUDIT_UNAVAILABLE` per request).
      expect(server.stderr().split('\n').filter((line) => line.includes('RWS_AUDIT_UNAVAILABLE'))).toEqual([
        'secrets-server: error RWS_AUDIT_UNAVAILABLE: the audit log /dev/full could not be written: no space left on device (ENOSPC) (hint: the file system is full: free some space)',
      ]);
    } finally {
      await server.stop();
    }
  });
});

describe('files written by the real sops', () => {
  it('serves the top-level values of a sops-age fixture and never its nested ones', async () => {
    const target = path.join(store.dir, 'fixture.enc.yaml');
    await copyFile(path.join(FIXTURES, 'secret.enc.yaml'), target);
    await chmod(target, 0o600);
    const keyFile = path.join(store.root, 'fixture-key.txt');
    await copyFile(path.join(FIXTURES, 'key.txt'), keyFile);
    await chmod(keyFile, 0o600);
    const server = await startServer(store, [], { SOPS_AGE_KEY_FILE: keyFile });
    try {
      const t = await token(server, apiKey, { environment: 'fixture', key_pattern: '*' });
      const list = await call(`${server.url}/api/v1/vault/fixture`, { auth: t });
      expect(list.body.keys).toEqual(['secret', 'string', 'int', 'float', 'boolean']);
      expect((await call(`${server.url}/api/v1/vault/fixture/secret`, { auth: t })).body.value).toBe('this is a secret');
      expect((await call(`${server.url}/api/v1/vault/fixture/int`, { auth: t })).body.value).toBe('7');
      expect((await call(`${server.url}/api/v1/vault/fixture/complex`, { auth: t })).status).toBe(404);
      const batch = await call(`${server.url}/api/v1/vault/secrets/batch`, { auth: t, json: { environment: 'fixture' } });
      expect(Object.keys(batch.body.secrets)).not.toContain('complex');
    } finally {
      await server.stop();
    }
  });
});
