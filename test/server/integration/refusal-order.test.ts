// What a client without a credential can make the server do: its request is refused (401) before
// its body is read, every such refusal counts toward the address's 429 (whose rows are folded),
// and nothing it sends leaves an unbounded number of audit rows. A client that hangs up mid-body
// is recorded as such (499), not as a server fault.
import net from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';
import { cliOk } from '../helpers/server.js';

let store: TestStore;
let server: RunningServer;
let readKey: string;
let adminKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { DB_URL: 'refusal-order-db-value' } });
  readKey = (await makeApiKey(store, ['production'], ['DB_*'])).key;
  adminKey = /^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'ops', '--admin']))?.[1] as string;
  server = await startServer(store, ['--console', '--log-format', 'json']);
});

afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  await store?.cleanup();
});

const url = (path: string) => `${server.url}${path}`;
const json = { 'content-type': 'application/json' };

describe('the credential comes before the body', () => {
  it('answers 401 to a request without a valid credential, whatever its body (bad JSON, wrong type, too large)', async () => {
    const agent = new Agent({ localAddress: '127.0.0.81' });
    try {
      const bad = `rws_sk_${'0'.repeat(32)}`;
      const cases: Array<[string, string, Record<string, string>, string]> = [
        ['/api/v1/vault/tokens/generate', '{', json, ''],
        ['/api/v1/vault/tokens/generate', 'subject=s', { 'content-type': 'application/x-www-form-urlencoded' }, bad],
        ['/api/v1/vault/tokens/generate', JSON.stringify({ pad: 'x'.repeat(70 * 1024) }), json, bad],
        ['/api/v1/vault/secrets/batch', '[]', json, 'not.a.token'],
        ['/api/v1/fallback/uses', '{', json, bad],
        ['/api/v1/auth/keys', '{', json, bad],
      ];
      for (const [path, body, headers, credential] of cases) {
        const reply = await call(url(path), { method: 'POST', body, headers: { ...headers, ...(credential ? { authorization: `Bearer ${credential}` } : {}) }, dispatcher: agent });
        expect({ path, status: reply.status, code: reply.body.error?.code }).toEqual({ path, status: 401, code: 'RWS_AUTH_FAILED' });
      }
    } finally {
      await agent.close();
    }
  });

  it('gives a read key 403 on an admin route before its body is looked at', async () => {
    const put = url('/api/v1/admin/environments/production/secrets/NEW_NAME');
    for (const [body, headers] of [['{', json], ['value=x', { 'content-type': 'text/plain' }], [JSON.stringify({ value: 'x'.repeat(70 * 1024) }), json]] as const) {
      const reply = await call(put, { method: 'PUT', body, headers: { ...headers, authorization: `Bearer ${readKey}` } });
      expect(reply.status).toBe(403);
      expect(reply.body.error.code).toBe('RWS_FORBIDDEN');
    }
    const create = await call(url('/api/v1/auth/keys'), { method: 'POST', body: '{', headers: { ...json, authorization: `Bearer ${readKey}` } });
    expect(create.status).toBe(403);
  });

  it('still reads the body of a request with a valid credential: its shape is checked next (400, 413)', async () => {
    const reply = await call(url('/api/v1/vault/tokens/generate'), { method: 'POST', body: '{', headers: { ...json, authorization: `Bearer ${readKey}` } });
    expect([reply.status, reply.body.error.code]).toEqual([400, 'RWS_BAD_REQUEST']);
    const large = await call(url('/api/v1/vault/tokens/generate'), { method: 'POST', body: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }), headers: { ...json, authorization: `Bearer ${readKey}` } });
    expect(large.status).toBe(413);
  });
});

describe('no audit rows without end from a client without a credential', () => {
  it('folds a flood of bad bodies without a key into the 429 row, like any failed authentication', async () => {
    const agent = new Agent({ localAddress: '127.0.0.82' });
    const before = auditRowsSync(store.dir).length;
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 60; i++) statuses.push((await call(url('/api/v1/vault/tokens/generate'), { method: 'POST', body: '{', headers: json, dispatcher: agent })).status);
      expect(new Set(statuses.slice(0, 20))).toEqual(new Set([401]));
      expect(new Set(statuses.slice(22))).toEqual(new Set([429]));
    } finally {
      await agent.close();
    }
    // A row per refusal before the limit; the 429s have none of their own (they are folded into
    // one row per address and minute, written when the minute ends).
    const rows = auditRowsSync(store.dir).slice(before).filter((row) => row.client === '127.0.0.82');
    expect(rows.filter((row) => row.status === 429)).toEqual([]);
    expect(rows.length).toBeLessThanOrEqual(22);
  });

  it('counts a console sign-in from another origin toward the limit', async () => {
    const agent = new Agent({ localAddress: '127.0.0.83' });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 25; i++) statuses.push((await call(url('/console/api/session'), { method: 'POST', headers: { authorization: `Bearer rws_sk_${'1'.repeat(32)}`, origin: 'https://evil.example' }, dispatcher: agent })).status);
      expect(new Set(statuses.slice(0, 20))).toEqual(new Set([403]));
      expect(statuses.slice(-1)).toEqual([429]);
    } finally {
      await agent.close();
    }
  });

  it('writes no audit row for a console page asking whether it is signed in, with no cookie', async () => {
    const before = auditRowsSync(store.dir).length;
    for (let i = 0; i < 30; i++) {
      const reply = await call(url('/console/api/session'));
      expect(reply.body).toEqual({ signed_in: false });
    }
    expect(auditRowsSync(store.dir).length).toBe(before);
    // With a cookie it is a credentialed request, audited like any other.
    const stale = await call(url('/console/api/session'), { headers: { cookie: `rws_session=${'A'.repeat(43)}` } });
    expect(stale.status).toBe(401);
    expect(auditRowsSync(store.dir).length).toBe(before + 1);
  });
});

describe('a client that hangs up in the middle of its body', () => {
  it('is recorded as 499 RWS_CLIENT_CLOSED in the audit row, the request log and the metrics, with no fault logged', async () => {
    const port = Number(new URL(server.url).port);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.84' }, () => {
        socket.write(`POST /api/v1/vault/tokens/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\nAuthorization: Bearer ${readKey}\r\n\r\n{"subject":`);
        setTimeout(() => socket.destroy(), 200);
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });
    await until(async () => auditRowsSync(store.dir).some((row) => row.client === '127.0.0.84'), 10_000);
    const row = auditRowsSync(store.dir).find((r) => r.client === '127.0.0.84');
    expect(row).toMatchObject({ event: 'token.generate', status: 499, error_code: 'RWS_CLIENT_CLOSED', outcome: 'failure' });
    await until(async () => server.stdout().split('\n').some((line) => line.includes('"status":499')), 5_000);
    const logged = server.stdout().split('\n').filter((line) => line.startsWith('{') && line.includes('tokens/generate')).map((line) => JSON.parse(line) as { status: number });
    expect(logged.some((line) => line.status === 499)).toBe(true);
    expect(logged.some((line) => line.status === 200)).toBe(false);
    const metrics = await call(url('/metrics'), { auth: adminKey });
    expect(metrics.text).toMatch(/route="\/api\/v1\/vault\/tokens\/generate",status="499"/);
    expect(metrics.text).not.toMatch(/route="\/api\/v1\/vault\/tokens\/generate",status="200"/);
    expect(server.stderr()).not.toMatch(/ECONNRESET|RWS_INTERNAL/);
  });

  it('still serves a whole request on the next connection', async () => {
    expect(await token(server, readKey, { environment: 'production', key_pattern: 'DB_URL' })).toMatch(/^ey/);
  });
});

describe('requests pipelined behind an answer that closes the connection', () => {
  /** Writes `requests` in one piece on a new connection; the status lines received until the server closes it. */
  async function pipeline(requests: string): Promise<string[]> {
    const port = Number(new URL(server.url).port);
    const received = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(requests));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      // A reset after the answer (bytes of ours the server never read) still leaves what was read.
      socket.on('error', (error) => (text === '' ? reject(error) : undefined));
      socket.on('close', () => resolve(text));
    });
    return received.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? [];
  }

  it('are never run (RFC 9112 §9.6): a read piped behind a 413 charges no use and leaves no row', async () => {
    for (const [what, first] of [
      // Chunked: the body is read up to the limit, and the rest, with the request behind it, parsed at once.
      ['a chunked body over 64 KiB', (body: string) => `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`],
      ['a Content-Length over 64 KiB', (body: string) => `Content-Length: ${body.length}\r\n\r\n${body}`],
    ] as const) {
      const once = await token(server, readKey, { environment: 'production', key_pattern: 'DB_URL', usage_limit: 1 });
      const jti = JSON.parse(Buffer.from(once.split('.')[1] as string, 'base64url').toString()).jti as string;
      const body = JSON.stringify({ subject: 'x'.repeat(70 * 1024), environment: 'production', key_pattern: 'DB_URL' });
      const head = `POST /api/v1/vault/tokens/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${readKey}\r\nContent-Type: application/json\r\n`;
      const read = `GET /api/v1/vault/production/DB_URL HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${once}\r\n\r\n`;
      expect({ what, answers: await pipeline(`${head}${first(body)}${read}`) }).toEqual({ what, answers: ['HTTP/1.1 413 Payload Too Large'] });
      // Its one use is still there, and the trail says nothing was read with it before now.
      expect(auditRowsSync(store.dir).filter((row) => row.jti === jti && row.event !== 'token.generate')).toEqual([]);
      const again = await call(url('/api/v1/vault/production/DB_URL'), { auth: once });
      expect({ what, status: again.status, value: again.body.value }).toEqual({ what, status: 200, value: 'refusal-order-db-value' });
    }
  });

  it('still answers every request of a pipeline that keeps the connection, in order', async () => {
    const tokenOf = await token(server, readKey, { environment: 'production', key_pattern: 'DB_URL', usage_limit: 3 });
    const read = `GET /api/v1/vault/production/DB_URL HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokenOf}\r\n\r\n`;
    const answers = await pipeline(`${read}GET /api/v1/vault/production/NOPE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokenOf}\r\n\r\n${read}${read}${read.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}`);
    expect(answers).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 401 Unauthorized']);
  });
});

describe('refusals of requests without a body', () => {
  it('keep the connection: a 404 or 405 answered at once still answers the requests pipelined behind it', async () => {
    const port = Number(new URL(server.url).port);
    const received = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () =>
        socket.write(
          'GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n' +
            'DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
            'POST /api/v1/vault/production/DB_URL HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' +
            'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        ),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve(text));
    });
    expect(received.match(/HTTP\/1\.1 \d{3} [^\r]*/g)).toEqual(['HTTP/1.1 404 Not Found', 'HTTP/1.1 405 Method Not Allowed', 'HTTP/1.1 405 Method Not Allowed', 'HTTP/1.1 200 OK']);
    // Only the last asked for the connection to close.
    expect(received.match(/\r\nconnection: close\r\n/gi)).toHaveLength(1);
  });

  it('still close the connection of a request whose body was not read', async () => {
    const port = Number(new URL(server.url).port);
    const received = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () =>
        socket.write('POST /no/such/route HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' + 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(text));
    });
    expect(received.match(/HTTP\/1\.1 \d{3} [^\r]*/g)).toEqual(['HTTP/1.1 404 Not Found']);
  });
});

describe('a client far ahead of its answers', () => {
  it('is cut off: requests piped behind a held one wait their turn, but no more than 32 of them', async () => {
    const held = await token(server, readKey, { environment: 'production', key_pattern: 'DB_URL' });
    const body = JSON.stringify({ environment: 'production', keys: ['DB_URL'] });
    const first = await call(url('/api/v1/vault/secrets/batch'), { auth: held, json: JSON.parse(body) });
    const etag = first.headers.get('etag') as string;
    const port = Number(new URL(server.url).port);
    const poll = `POST /api/v1/vault/secrets/batch?wait=5 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${held}\r\nContent-Type: application/json\r\nIf-None-Match: ${etag}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const exchange = (piped: number) =>
      new Promise<{ answers: number; ms: number }>((resolve) => {
        const started = Date.now();
        const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(poll + 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(piped)));
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve({ answers: text.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0, ms: Date.now() - started }));
        setTimeout(() => socket.end(), 8_000);
      });
    // Without a bound each waiting request is held in memory until the one ahead answers: 27 MB
    // of them took the server to 1.9 GB. 32 wait; the 33rd closes the connection at once.
    const cut = await exchange(33);
    expect(cut.answers).toBe(0);
    expect(cut.ms).toBeLessThan(3_000);
    // 32 are answered in order once the held one is (its 304 when the wait ends).
    const kept = await exchange(32);
    expect(kept.answers).toBe(33);
    expect(kept.ms).toBeGreaterThanOrEqual(4_000);
    expect((await call(url('/healthz'))).status).toBe(200);
  }, 20_000);
});
