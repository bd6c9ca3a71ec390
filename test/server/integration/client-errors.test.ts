// Requests node:http refuses before the app sees them, sent on raw sockets to the real server:
// each answer is the JSON error every other answer is, with the app's security headers and
// `Connection: close`, and nothing pipelined behind a refused request runs (no audit row, no edit).
import { readFile } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, call, cliOk, makeApiKey, makeStore, type RunningServer, selfSignedCert, startServer, type TestStore, token } from '../helpers/server.js';

let store: TestStore;
let adminKey: string;
beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'client-errors-value' } });
  adminKey = /^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'ops', '--admin']))?.[1] as string;
});
afterAll(async () => {
  await store?.cleanup();
});

interface Answer {
  statusLine: string;
  headers: Record<string, string>;
  body: unknown;
  /** Status lines received: one answer, then the connection closed. */
  answers: number;
}

/**
 * Writes `request` on a new connection (TLS when `ca` is given) and reads until the server closes
 * it; `drip` then writes it a byte every 200 ms, as a slow client does.
 */
async function exchange(url: string, request: string, options: { ca?: string; drip?: string } = {}): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const received = await new Promise<string>((resolve, reject) => {
    const socket = options.ca === undefined ? connectTcp({ host: hostname, port: Number(port) }) : connectTls({ host: hostname, port: Number(port), ca: options.ca });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    // A reset after the answer (unread bytes of ours at close) still leaves what was read.
    socket.on('error', (error) => (text === '' ? reject(error) : undefined));
    const drip = options.drip === undefined ? undefined : setInterval(() => socket.write(options.drip as string), 200);
    socket.on('close', () => {
      clearInterval(drip);
      resolve(text);
    });
    socket.once(options.ca === undefined ? 'connect' : 'secureConnect', () => socket.write(request));
  });
  const [head = '', body = ''] = received.split('\r\n\r\n', 2);
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { statusLine, headers, body: body === '' ? undefined : JSON.parse(body), answers: received.match(/HTTP\/1\.1 \d{3} /g)?.length ?? 0 };
}

/** A read of SERVICE_B_KEY with `token` and then `behind`, pipelined on one connection: all that comes back before the server closes it. */
async function behindRead(url: string, token: string, behind: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise<string>((resolve) => {
    const socket = connectTcp({ host: hostname, port: Number(port) });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
    socket.once('connect', () => socket.write(`GET /api/v1/vault/production/SERVICE_B_KEY HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n${behind}`));
  });
}

/** An admin request that leaves an audit row if it ever runs. */
const smuggled = () => `GET /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\n\r\n`;

const MALFORMED: Array<[string, () => string]> = [
  ['Content-Length with Transfer-Encoding', () => `POST /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled()}`],
  ['two Content-Lengths', () => `POST /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}${smuggled()}`],
  ['a bad Content-Length', () => `POST /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n${smuggled()}`],
  ['no Host', () => `GET /api/v1/auth/keys HTTP/1.1\r\nAuthorization: Bearer ${adminKey}\r\n\r\n${smuggled()}`],
  // RFC 9112 §3.2: node:http would take the first; a proxy in front may have routed by the second.
  ['two Host headers', () => `GET /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nHost: y\r\nAuthorization: Bearer ${adminKey}\r\n\r\n${smuggled()}`],
  ['two Host headers on HTTP/1.0', () => `GET /api/v1/auth/keys HTTP/1.0\r\nHost: x\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\n\r\n${smuggled()}`],
  ['an obs-folded header', () => `GET /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n ${adminKey}\r\n\r\n${smuggled()}`],
  ['bare LF line ends', () => `GET /api/v1/auth/keys HTTP/1.1\nHost: x\nAuthorization: Bearer ${adminKey}\n\n${smuggled()}`],
  ['an unknown method', () => `BREW /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\n\r\n${smuggled()}`],
  // Not a proxy: node:http, with no listener of its own, cut the connection without a word.
  ['CONNECT', () => `CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nAuthorization: Bearer ${adminKey}\r\n\r\n${smuggled()}`],
];

const SECURITY = {
  'content-security-policy': expect.stringContaining("default-src 'none'"),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'content-type': 'application/json; charset=utf-8',
  connection: 'close',
};

function expectRefusal(answer: Answer, status: string, code: string, message: string | RegExp): void {
  expect(answer.statusLine).toBe(`HTTP/1.1 ${status}`);
  expect(answer.headers).toMatchObject(SECURITY);
  expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify(answer.body)));
  expect(answer.body).toEqual({ error: { code, message: expect.stringMatching(message) } });
  expect(answer.answers).toBe(1);
}

describe('requests node:http refuses', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(store, ['--headers-timeout', '1', '--request-timeout', '2']);
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it('answers malformed requests with a JSON 400, and runs nothing pipelined behind them', async () => {
    const rows = auditRowsSync(store.dir).length;
    for (const [what, request] of MALFORMED) {
      const answer = await exchange(server.url, request());
      expect({ what, status: answer.statusLine }).toEqual({ what, status: 'HTTP/1.1 400 Bad Request' });
      expectRefusal(answer, '400 Bad Request', 'RWS_BAD_REQUEST', /^malformed HTTP request/);
    }
    expect(auditRowsSync(store.dir).length).toBe(rows);
    // The control: the same admin request alone runs, and leaves its row.
    expect((await exchange(server.url, smuggled().replace('Host: x\r\n', 'Host: x\r\nConnection: close\r\n'))).statusLine).toBe('HTTP/1.1 200 OK');
    expect(auditRowsSync(store.dir).length).toBe(rows + 1);
  });

  it('answers a request without Host after the answer of the request pipelined ahead of it, never in its place', async () => {
    const reader = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    // A one-use token: its read is charged and audited as served, so its answer must arrive.
    const once = await token(server, reader.key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1 });
    const received = await behindRead(server.url, once, `GET /healthz HTTP/1.1\r\n\r\n${smuggled()}`);
    const statusLines = received.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? [];
    expect(statusLines).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 400 Bad Request']);
    expect(received).toContain('client-errors-value');
    expect(received).toContain('HTTP/1.1 needs a Host header');
  });

  it('answers an Expect other than 100-continue with a JSON 417, and runs nothing pipelined behind it', async () => {
    const rows = auditRowsSync(store.dir).length;
    for (const expectation of ['nope', 'token=abc']) {
      const answer = await exchange(server.url, `POST /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nExpect: ${expectation}\r\nAuthorization: Bearer ${adminKey}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}${smuggled()}`);
      expectRefusal(answer, '417 Expectation Failed', 'RWS_BAD_REQUEST', 'the only Expect understood is 100-continue');
    }
    expect(auditRowsSync(store.dir).length).toBe(rows);
  });

  it('answers a transfer coding other than chunked with a JSON 501, and runs nothing: no use charged, no row, nothing behind it', async () => {
    const reader = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    const body = JSON.stringify({ environment: 'production', keys: ['SERVICE_B_KEY'] });
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    // RFC 9112 §6.1: a coding the server does not understand is a 501; two headers are one list.
    for (const coding of ['gzip, chunked', 'deflate,chunked', 'identity, chunked', 'gzip\r\nTransfer-Encoding: chunked']) {
      // A one-use token: a batch that ran would spend it.
      const once = await token(server, reader.key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1 });
      const rows = auditRowsSync(store.dir).length;
      const answer = await exchange(server.url, `POST /api/v1/vault/secrets/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${once}\r\nContent-Type: application/json\r\nTransfer-Encoding: ${coding}\r\n\r\n${chunked}${smuggled()}`);
      expect({ coding, status: answer.statusLine }).toEqual({ coding, status: 'HTTP/1.1 501 Not Implemented' });
      expectRefusal(answer, '501 Not Implemented', 'RWS_BAD_REQUEST', 'the only transfer coding understood is chunked');
      expect(auditRowsSync(store.dir).length).toBe(rows);
      // Its use is still there.
      expect((await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: once })).body.value).toBe('client-errors-value');
    }
    // The control: plain chunked (in any case) is read.
    const once = await token(server, reader.key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1 });
    const answer = await exchange(server.url, `POST /api/v1/vault/secrets/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${once}\r\nContent-Type: application/json\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n${chunked}`);
    expect(answer.statusLine).toBe('HTTP/1.1 200 OK');
  });

  it('sends the answer to a request pipelined ahead of a refused one before it closes the connection', async () => {
    const reader = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
    for (const [what, refused] of [
      ['an unknown method', 'BREW / HTTP/1.1\r\nHost: x\r\n\r\n'],
      ['bare LF line ends', 'GET / HTTP/1.1\nHost: x\n\n'],
      ['headers over the size limit', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`],
      ['CONNECT', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n'],
    ]) {
      // A one-use token: its read runs and is charged, so its answer must arrive.
      const once = await token(server, reader.key, { environment: 'production', key_pattern: 'SERVICE_B_KEY', usage_limit: 1 });
      const received = await behindRead(server.url, once, refused);
      // Its answer, whole, and then the connection closed (one that has carried an answer gets no refusal).
      expect({ what, answers: received.match(/HTTP\/1\.1 \d{3} [^\r]*/g) }).toEqual({ what, answers: ['HTTP/1.1 200 OK'] });
      expect(received).toMatch(/"value":"client-errors-value"}$/);
    }
  });

  it('answers headers over the size limit with a JSON 431', async () => {
    const rows = auditRowsSync(store.dir).length;
    const answer = await exchange(server.url, `GET /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n${smuggled()}`);
    expectRefusal(answer, '431 Request Header Fields Too Large', 'RWS_HEADERS_TOO_LARGE', /^request headers are limited to \d+ bytes$/);
    expect(auditRowsSync(store.dir).length).toBe(rows);
  });

  it('answers headers cut by --headers-timeout with a JSON 408', async () => {
    const rows = auditRowsSync(store.dir).length;
    // Dripped, as a slow client sends: the connection is never idle.
    const answer = await exchange(server.url, `GET /api/v1/auth/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\nX-Slow: `, { drip: 'a' });
    expectRefusal(answer, '408 Request Timeout', 'RWS_REQUEST_TIMEOUT', 'the request was not received in time');
    expect(auditRowsSync(store.dir).length).toBe(rows);
  });

  it('answers a body cut by --request-timeout with a JSON 408, and makes no edit', async () => {
    const body = `{"value":"${'s'.repeat(200)}"}`;
    const answer = await exchange(server.url, `PUT /api/v1/admin/environments/production/secrets/SLOW HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${adminKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`, { drip: ' ' });
    expectRefusal(answer, '408 Request Timeout', 'RWS_REQUEST_TIMEOUT', 'the request was not received in time');
    const names = await call(`${server.url}/api/v1/admin/environments/production/secrets`, { auth: adminKey });
    expect(names.body.names).toEqual(['SERVICE_B_KEY']);
  });
});

describe('over TLS', () => {
  it('answers the same way', async () => {
    const { cert, key } = await selfSignedCert(store.root);
    const server = await startServer(store, ['--tls-cert', cert, '--tls-key', key]);
    try {
      const ca = await readFile(cert, 'utf8');
      const rows = auditRowsSync(store.dir).length;
      for (const [, request] of MALFORMED) expectRefusal(await exchange(server.url, request(), { ca }), '400 Bad Request', 'RWS_BAD_REQUEST', /^malformed HTTP request/);
      expectRefusal(await exchange(server.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, { ca }), '431 Request Header Fields Too Large', 'RWS_HEADERS_TOO_LARGE', /^request headers/);
      expect(auditRowsSync(store.dir).length).toBe(rows);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
