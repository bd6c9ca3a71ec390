// Running the server for months: SIGHUP reloads (a renewed certificate is served, a broken one is
// not), start-up failures that name their cause, metrics on their own listener and the JSON
// request log. Real processes, real signals, a real TLS client.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rm, symlink } from 'node:fs/promises';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import path from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, call, cli, cliOk, generate, makeApiKey, makeStore, startServer, type TestStore, token, until } from '../helpers/server.js';

const run = promisify(execFile);
let store: TestStore;
let apiKey: string;
let apiKeyId: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'ops-secret-value' } });
  ({ key: apiKey, id: apiKeyId } = await makeApiKey(store, ['production'], ['SERVICE_B_*']));
});
afterAll(async () => {
  await store?.cleanup();
});

async function makeCertificate(dir: string, name: string): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key };
}

/** The SHA-256 fingerprint of the certificate a TLS client is shown at `url`. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;

/** Two certificates in `store.root/name`, and live.crt/live.key beside them, a copy of the first. */
async function livePair(name: string) {
  const dir = path.join(store.root, name);
  const first = await makeCertificate(dir, 'first');
  const second = await makeCertificate(dir, 'second');
  const live = { cert: path.join(dir, 'live.crt'), key: path.join(dir, 'live.key') };
  await copyFile(first.cert, live.cert);
  await copyFile(first.key, live.key);
  return { dir, first, second, live };
}

describe('SIGHUP', () => {
  it('says there is nothing to reload when the server has no TLS pair and no audit log, and what a restart is needed for', async () => {
    const server = await startServer(store);
    try {
      server.process.kill('SIGHUP');
      await until(async () => server.stderr() !== '');
      expect(server.stderr()).toBe(
        'secrets-server: SIGHUP, nothing to reload (SIGHUP re-reads --tls-cert and --tls-key and reopens --audit-log; the JWT secret, the API key pepper and the age identities are read at start: restart the server to change them)\n',
      );
      expect((await call(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  it('serves a renewed certificate to new connections, keeps the old one when the new pair is broken, and never stops', async () => {
    const { first, second, live } = await livePair('tls');
    const server = await startServer(store, ['--tls-cert', live.cert, '--tls-key', live.key]);
    try {
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(first.cert));

      await copyFile(second.cert, live.cert);
      await copyFile(second.key, live.key);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('SIGHUP, TLS certificate and key reloaded'));
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(second.cert));

      // A renewal gone wrong: the key of another certificate. The old pair stays.
      await copyFile(first.key, live.key);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('SIGHUP, kept the old TLS certificate and key'));
      expect(server.stderr()).toMatch(/kept the old TLS certificate and key: RWS_TLS_INVALID: .*live\.crt.*live\.key/);
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(second.cert));
      // Swapped files, then a missing one: the same.
      await copyFile(second.key, live.cert);
      server.process.kill('SIGHUP');
      await until(async () => (server.stderr().match(/kept the old/g) ?? []).length >= 2);
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(second.cert));
      await rm(live.key);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('RWS_TLS_UNREADABLE: cannot read --tls-key'));
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(second.cert));
      expect(server.stderr()).not.toContain('-----BEGIN');
      expect(server.process.exitCode).toBeNull();
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('refuses a FIFO, a device or a directory in place of the certificate without waiting on it, and a key others can read', async () => {
    const { dir, first, second, live } = await livePair('tls-swaps');
    await chmod(live.key, 0o644);
    const shared = await cli(['serve', '--store', store.dir, '--port', '0', '--tls-cert', live.cert, '--tls-key', live.key]);
    expect(shared.exitCode).toBe(1);
    expect(shared.stderr).toBe(`secrets-server: error RWS_FILE_ACCESS: --tls-key ${live.key} is readable by others (mode 644) (hint: chmod 600 ${live.key}, or give secrets-server a copy of its own (0600, owned by the user running it))\n`);
    await chmod(live.key, 0o600);
    const server = await startServer(store, ['--tls-cert', live.cert, '--tls-key', live.key]);
    const kept = () => (server.stderr().match(/kept the old TLS certificate and key/g) ?? []).length;
    try {
      // Each SIGHUP with a FIFO there held a thread-pool thread for good: after four the server
      // answered nothing, SIGTERM included.
      await rm(live.cert);
      await run('mkfifo', [live.cert]);
      for (let hangup = 1; hangup <= 5; hangup++) {
        server.process.kill('SIGHUP');
        await until(async () => kept() >= hangup);
      }
      expect(server.stderr()).toContain(`RWS_TLS_UNREADABLE: cannot read --tls-cert ${live.cert}: not a regular file`);
      expect((await call(`${server.url}/healthz`, { dispatcher: new Agent({ connect: { rejectUnauthorized: false } }) })).status).toBe(200);
      await rm(live.cert);
      await symlink('/dev/zero', live.cert);
      server.process.kill('SIGHUP');
      await until(async () => kept() >= 6);
      await rm(live.cert);
      await mkdir(live.cert);
      server.process.kill('SIGHUP');
      await until(async () => kept() >= 7);
      await rm(live.cert, { recursive: true });
      // The renewed pair, its key left readable by others: kept out until chmod 600.
      await copyFile(second.cert, live.cert);
      await copyFile(second.key, live.key);
      await chmod(live.key, 0o640);
      server.process.kill('SIGHUP');
      await until(async () => kept() >= 8);
      expect(server.stderr()).toContain(`kept the old TLS certificate and key: RWS_FILE_ACCESS: --tls-key ${live.key} is readable by others (mode 640)`);
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(first.cert));
      await chmod(live.key, 0o600);
      server.process.kill('SIGHUP');
      await until(async () => server.stderr().includes('SIGHUP, TLS certificate and key reloaded'));
      expect(await servedFingerprint(server.url)).toBe(await fingerprintOf(second.cert));
      expect(server.stderr()).not.toContain('-----BEGIN');
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('does not stop a plain HTTP server', async () => {
    const server = await startServer(store);
    try {
      server.process.kill('SIGHUP');
      server.process.kill('SIGHUP');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await call(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});

describe('start-up errors', () => {
  const oneLine = (stderr: string) => expect(stderr).toMatch(/^secrets-server: error RWS_[A-Z_]+: [^\n]+ \(hint: [^\n]+\)\n$/);

  it('names a missing TLS file, and swapped certificate and key', async () => {
    const { cert, key } = await makeCertificate(path.join(store.root, 'tls-start'), 'start');
    const missing = await cli(['serve', '--store', store.dir, '--port', '0', '--tls-cert', '/nonexistent/cert.pem', '--tls-key', key]);
    expect(missing.exitCode).toBe(1);
    oneLine(missing.stderr);
    expect(missing.stderr).toContain('RWS_TLS_UNREADABLE: cannot read --tls-cert /nonexistent/cert.pem: ENOENT');
    const swapped = await cli(['serve', '--store', store.dir, '--port', '0', '--tls-cert', key, '--tls-key', cert]);
    expect(swapped.exitCode).toBe(1);
    oneLine(swapped.stderr);
    expect(swapped.stderr).toContain(`RWS_TLS_INVALID: --tls-cert ${key} and --tls-key ${cert}`);
    expect(swapped.stderr).toContain('swapped');
    expect(swapped.stderr).not.toContain('-----');
  });

  it('names the address in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await cli(['serve', '--store', store.dir, '--port', String(port)]);
      expect(result.exitCode).toBe(1);
      oneLine(result.stderr);
      expect(result.stderr).toContain(`RWS_LISTEN_FAILED: cannot listen on 127.0.0.1:${port}: address in use (EADDRINUSE)`);
    } finally {
      blocker.close();
    }
  });

  it('names --metrics-listen, not --port, when the metrics address is the one in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await cli(['serve', '--store', store.dir, '--port', '0', '--metrics-listen', `127.0.0.1:${port}`]);
      expect([result.exitCode, result.stderr]).toEqual([
        1,
        `secrets-server: error RWS_LISTEN_FAILED: cannot listen on 127.0.0.1:${port} (--metrics-listen): address in use (EADDRINUSE) (hint: another process listens there (another secrets-server on this host?): stop it, or give --metrics-listen another HOST:PORT)\n`,
      ]);
    } finally {
      blocker.close();
    }
  });

  it('names an address not on this machine, with --port 0 as "any port" rather than HOST:undefined', async () => {
    // 192.0.2.1 (TEST-NET-1, RFC 5737) is on no interface here.
    for (const [port, where] of [['0', '192.0.2.1 (any port)'], ['8200', '192.0.2.1:8200']]) {
      const result = await cli(['serve', '--store', store.dir, '--port', port, '--host', '192.0.2.1', '--insecure-listen']);
      expect(result.exitCode).toBe(1);
      oneLine(result.stderr);
      expect(result.stderr).toMatch(new RegExp(`^secrets-server: error RWS_LISTEN_FAILED: cannot listen on ${where.replace(/[.()]/g, '\\$&')}: address not available \\(EADDRNOTAVAIL\\) \\(hint: `));
    }
  });

  it('names a host that does not resolve, for --host and --metrics-listen, instead of an internal error', async () => {
    const { cert, key } = await makeCertificate(path.join(store.root, 'tls-host'), 'host');
    for (const args of [['--host', 'no-such-host.invalid', '--tls-cert', cert, '--tls-key', key], ['--metrics-listen', 'no-such-host.invalid:9464']]) {
      const result = await cli(['serve', '--store', store.dir, '--port', '0', ...args]);
      expect(result.exitCode).toBe(1);
      oneLine(result.stderr);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_LISTEN_FAILED: cannot listen on no-such-host\.invalid: no such host \((ENOTFOUND|EAI_AGAIN)\) \(hint: check --host \/ --metrics-listen/);
    }
  });

  it('names a read-only audit log (a read-only tmpfs in a user namespace; skipped where unshare is refused)', async (context) => {
    const probe = await run('unshare', ['-rm', 'true']).then(() => true, () => false);
    if (!probe) return context.skip();
    const readOnly = path.join(store.root, 'read-only');
    await mkdir(readOnly, { recursive: true });
    const script = `mount -t tmpfs -o ro,size=1m tmpfs "$1" && exec "$2" serve --store "$3" --port 0 --audit-log "$1/audit.log"`;
    const result = await run('unshare', ['-rm', 'sh', '-c', script, 'sh', readOnly, BIN, store.dir]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(result.code).toBe(1);
    oneLine(result.stderr);
    expect(result.stderr).toContain(`RWS_FILE_ACCESS: cannot open ${readOnly}/audit.log: read-only file system (EROFS)`);
  });
});

describe('metrics and the request log', () => {
  it('counts on a listener of its own, never showing a name, key id or subject; logs one JSON line per request without values or credentials', async () => {
    const server = await startServer(store, ['--metrics-listen', '127.0.0.1:0', '--log-format', 'json']);
    try {
      await until(async () => /metrics on (\S+)/.test(server.stderr()));
      const metricsUrl = /metrics on (\S+)/.exec(server.stderr())?.[1] as string;
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      // Not without an admin key on the public listener.
      expect((await call(`${server.url}/metrics`)).status).toBe(401);

      const minted = await generate(server, apiKey, { subject: 'metrics-subject', environment: 'production', key_pattern: 'SERVICE_B_*' });
      expect(minted.status).toBe(201);
      const t = minted.body.token as string;
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).body.value).toBe('ops-secret-value');
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: 'rws_sk_00000000000000000000000000000000' })).status).toBe(401);
      expect((await call(`${server.url}/api/v1/vault/tokens/revoke`, { auth: t, method: 'POST' })).status).toBe(204);
      const head = await call(`${server.url}/healthz`, { method: 'HEAD' });
      expect([head.status, head.text]).toEqual([200, '']);

      const text = (await call(metricsUrl)).text;
      expect(text).toContain('# TYPE rws_http_requests_total counter');
      expect(text).toContain('rws_http_requests_total{route="/api/v1/vault/{environment}/{key}",status="200"} 1');
      expect(text).toContain('rws_http_requests_total{route="/healthz",status="200"} 1');
      expect(text).toMatch(/rws_http_request_duration_seconds_bucket\{route="\/api\/v1\/vault\/tokens\/generate",le="\+Inf"\} 1/);
      expect(text).toContain('\nrws_tokens_minted_total 1\n');
      expect(text).toContain('\nrws_token_uses_total 1\n');
      expect(text).toContain('\nrws_token_revocations_total 1\n');
      expect(text).toContain('\nrws_auth_failures_total 2\n');
      expect(text).toContain('\nrws_rate_limited_total 0\n');
      expect(text).toContain('\nrws_audit_write_failures_total 0\n');
      expect(text).toContain('\nrws_state_write_failures_total 0\n');
      expect(text).toMatch(/\nrws_open_connections \d+\n/);
      expect(text).toContain('rws_sops_files{state="loaded"} 1');
      for (const secret of ['SERVICE_B_KEY', 'production', apiKeyId, 'metrics-subject', t, apiKey, 'ops-secret-value']) expect(text).not.toContain(secret);
      const head2 = await call(metricsUrl, { method: 'HEAD' });
      expect([head2.status, head2.text]).toEqual([200, '']);

      const lines = server.stdout().split('\n').slice(1).filter((line) => line !== '');
      const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(entries.map((entry) => [entry.method, entry.route, entry.status])).toEqual([
        ['GET', '/metrics', 401],
        ['POST', '/api/v1/vault/tokens/generate', 201],
        ['GET', '/api/v1/vault/{environment}/{key}', 200],
        ['GET', '/api/v1/vault/{environment}/{key}', 401],
        ['POST', '/api/v1/vault/tokens/revoke', 204],
        ['HEAD', '/healthz', 200],
      ]);
      for (const entry of entries) {
        expect(Object.keys(entry)).toEqual(['time', 'method', 'route', 'status', 'duration_ms', 'api_key_id', 'client']);
        expect(entry.client).toBe('127.0.0.1');
        expect(typeof entry.duration_ms).toBe('number');
      }
      // The revocation names the key that minted the token (the state holds its issue record).
      expect(entries.map((entry) => entry.api_key_id)).toEqual([null, apiKeyId, apiKeyId, null, apiKeyId, null]);
      for (const secret of [t, apiKey, 'ops-secret-value', 'SERVICE_B_KEY']) expect(server.stdout()).not.toContain(secret);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('holds a bounded number of metrics connections, so that idle ones there cannot use up the descriptors the vault listener needs', async () => {
    const limited = ['sh', '-c', 'ulimit -n 200 && exec "$0" "$@"'];
    const server = await startServer(store, ['--metrics-listen', '127.0.0.1:0'], {}, limited);
    const sockets: Socket[] = [];
    try {
      await until(async () => /metrics on (\S+)/.test(server.stderr()));
      const metricsUrl = new URL(/metrics on (\S+)/.exec(server.stderr())?.[1] as string);
      // No credential is asked there: any local user can open these. 400 idle ones made the vault
      // listener reset every client (EMFILE), healthz included.
      for (let i = 0; i < 400; i++) {
        const socket = netConnect(Number(metricsUrl.port), metricsUrl.hostname);
        socket.on('error', () => undefined);
        sockets.push(socket);
      }
      await Promise.all(sockets.map((socket) => new Promise((resolve) => (socket.readyState === 'open' ? resolve(undefined) : socket.once('connect', resolve).once('close', resolve)))));
      expect((await call(`${server.url}/healthz`)).status).toBe(200);
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t })).body.value).toBe('ops-secret-value');
      for (const socket of sockets) socket.destroy();
      await until(async () => (await call(metricsUrl.href).catch(() => ({ status: 0 }))).status === 200);
    } finally {
      for (const socket of sockets) socket.destroy();
      expect(await server.stop()).toBe(0);
    }
  });

  it('shows the metrics to an admin key on the public listener, audited; a read key gets 403', async () => {
    const admin = await makeApiKey(store, [], [], ['--admin']);
    const server = await startServer(store);
    try {
      const minted = await generate(server, apiKey, { subject: 'metrics-subject', environment: 'production', key_pattern: 'SERVICE_B_*' });
      expect(minted.status).toBe(201);
      expect((await call(`${server.url}/metrics`, { auth: apiKey })).status).toBe(403);
      expect((await call(`${server.url}/metrics`, { auth: minted.body.token as string })).status).toBe(401);
      expect((await call(`${server.url}/metrics`, { auth: admin.key, method: 'POST' })).status).toBe(405);
      const scraped = await call(`${server.url}/metrics`, { auth: admin.key });
      expect(scraped.status).toBe(200);
      expect(scraped.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(scraped.headers.get('cache-control')).toBe('no-store');
      expect(scraped.text).toContain('\nrws_tokens_minted_total 1\n');
      expect(scraped.text).toContain('rws_http_requests_total{route="/metrics",status="403"} 1');
      for (const secret of ['SERVICE_B_KEY', 'production', apiKeyId, admin.id, 'metrics-subject', apiKey, admin.key, minted.body.token as string]) expect(scraped.text).not.toContain(secret);
      const head = await call(`${server.url}/metrics`, { auth: admin.key, method: 'HEAD' });
      expect([head.status, head.text]).toEqual([200, '']);
      // Every scrape is an audit row naming the admin key; the refusals name the read key.
      const rows = (await cliOk(['audit', '--store', store.dir, '--event', 'metrics.read', '--json'])).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(rows.reverse().map((row) => [row.api_key_id, row.status])).toEqual([[apiKeyId, 403], [admin.id, 200], [admin.id, 200]]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it('refuses bad --max-connections, --headers-timeout and --request-timeout values', async () => {
    for (const [flag, value] of [['--max-connections', '0'], ['--max-connections', '-5'], ['--max-connections', '1.5'], ['--max-connections', 'many'], ['--headers-timeout', '0'], ['--headers-timeout', '601'], ['--headers-timeout', '2.5'], ['--request-timeout', '5000']]) {
      const result = await cli(['serve', '--store', store.dir, '--port', '0', flag as string, value as string]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^secrets-server: error RWS_USAGE: Expected ${flag} to be `));
    }
  });

  it('refuses a flag given twice or empty, and a port that is not decimal digits, instead of guessing (a random port, an internal error)', async () => {
    const refusals: Array<[string[], string]> = [
      // `--port=$PORT` with PORT unset listened on a random port; `0x1F90` on 8080.
      [['--port='], '--port is given an empty value (an unset variable?); give it a value or leave it out'],
      [['--port', '0x1F90'], 'Expected --port to be an integer from 0 to 65535, got 0x1F90'],
      [['--max-long-polls='], '--max-long-polls is given an empty value'],
      // An array reached the file system: an internal error, or a wrong code with ERR_INVALID_ARG_TYPE.
      [['--port', '0', '--store', store.dir], '--store is given more than once; give it once'],
      [['--port', '0', '--audit-log', path.join(store.root, 'a.log'), '--audit-log', path.join(store.root, 'b.log')], '--audit-log is given more than once'],
      [['--port', '0', '--tls-cert', 'a.crt', '--tls-key', 'a.key', '--tls-key', 'b.key'], '--tls-key is given more than once'],
      // Quietly no request log at all.
      [['--port', '0', '--log-format', 'json', '--log-format', 'text'], '--log-format is given more than once'],
      [['--port', '0', '--audit-log='], '--audit-log is given an empty value'],
    ];
    for (const [args, message] of refusals) {
      const result = await cli(['serve', '--store', store.dir, ...args]);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stdout).not.toContain('listening');
      expect(result.stderr).toMatch(new RegExp(`^secrets-server: error RWS_USAGE: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.* \\(hint: see secrets-server serve --help\\)\n$`));
    }
    const status = await cli(['status', '--store', store.dir, '--store', store.dir]);
    expect(status.exitCode).toBe(2);
    expect(status.stderr).toContain('RWS_USAGE: --store is given more than once');
  });

  it('refuses a filter of audit, a name of apikey create or --from-store given twice or empty, a --limit that is not decimal digits, and a key id or environment no row can hold', async () => {
    const refusals: Array<[string[], string]> = [
      // An internal error (TypeError) for each of these five.
      [['audit', '--event', 'secret.read', '--event', 'secret.batch'], '--event is given more than once; give it once'],
      [['audit', '--api-key', 'ak_0000000000000001', '--api-key', 'ak_0000000000000002'], '--api-key is given more than once'],
      [['audit', '--environment', 'a', '--environment', 'b'], '--environment is given more than once'],
      [['audit', '--outcome', 'success', '--outcome', 'failure'], '--outcome is given more than once'],
      [['audit', '--since', '2030-01-01', '--until', '2030-02-01', '--until', '2030-03-01'], '--until is given more than once'],
      // `--limit=$N` with N unset was read as 0; `--limit 0x10` listed 16 rows.
      [['audit', '--limit='], '--limit is given an empty value'],
      [['audit', '--limit', '0x10'], 'Expected --limit to be an integer from 1 to 10000, got 0x10'],
      // A key id or an environment no row can hold listed nothing, read as "nothing happened".
      [['audit', '--api-key', 'ak_123'], 'Expected --api-key to be a key id such as ak_0123456789abcdef (apikey list shows them), got ak_123'],
      [['audit', '--environment', '../production'], 'Expected --environment to be a name of letters, digits, _ and - (at most 64), got ../production'],
      // A follower never stops at --until: past it, it printed nothing, for ever.
      [['audit', '--follow', '--until', '2030-01-01T00:00:00Z'], '--until cannot be given with --follow, which streams until it is stopped'],
      // A key named "a,b"; an import from "a,b", or from the working directory.
      [['apikey', 'create', '--admin', '--name', 'a', '--name', 'b'], '--name is given more than once'],
      [['db', 'import', '--from-store', store.dir, '--from-store', store.dir], '--from-store is given more than once'],
      [['db', 'import', '--from-store='], '--from-store is given an empty value'],
    ];
    for (const [args, message] of refusals) {
      const result = await cli([...args, '--store', store.dir]);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stdout).toBe('');
      // The hint names the command's own --help page, which lists the flag.
      const command = args.slice(0, args.findIndex((arg) => arg.startsWith('-'))).join(' ');
      expect(result.stderr).toMatch(new RegExp(`^secrets-server: error RWS_USAGE: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.* \\(hint: see secrets-server ${command} --help\\)\n$`));
    }
    expect(await cli(['apikey', 'list', '--store', store.dir])).toMatchObject({ exitCode: 0 });
    expect((await cli(['apikey', 'list', '--store', store.dir])).stdout).not.toContain('"a,b"');
  });

  it('refuses a --metrics-listen that is not HOST:PORT', async () => {
    for (const bad of ['9464', 'localhost', '127.0.0.1:99999', '[nothex]:1']) {
      const result = await cli(['serve', '--store', store.dir, '--metrics-listen', bad]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain('RWS_USAGE: Expected --metrics-listen to be HOST:PORT');
    }
  });
});

describe('HEAD', () => {
  it('answers HEAD wherever GET works, with GET\'s status and headers and no body', async () => {
    const server = await startServer(store);
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
      for (const url of [`${server.url}/healthz`, `${server.url}/api/v1/vault/production/SERVICE_B_KEY`, `${server.url}/api/v1/vault/production`]) {
        const get = await call(url, { auth: t });
        const head = await call(url, { auth: t, method: 'HEAD' });
        expect([head.status, head.text, head.headers.get('content-length')]).toEqual([get.status, '', get.headers.get('content-length')]);
      }
      expect((await call(`${server.url}/api/v1/vault/production/NOPE_KEY`, { auth: t, method: 'HEAD' })).status).toBe(403);
      expect((await call(`${server.url}/api/v1/vault/tokens/generate`, { method: 'HEAD' })).status).toBe(405);
    } finally {
      await server.stop();
    }
  });
});
