// How the client behaves on the wire, against a raw TCP stub: the 8 MiB limit (declared, lied
// about, or streamed), timeouts, retries only for 502/503/504 and connection failures, the status
// codes, a reset mid-body, and redirects never followed.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { expectVaultError, makeClient, type TestClient } from './helpers/client.js';
import { json, reply, withStub } from './helpers/stub.js';

const TOKEN = 'eyJhbGciOiJIUzI1NiIsInR5cCI6InJ3cyJ9.eyJzdWIiOiJzdHViIn0.c3R1Yi1zaWduYXR1cmU';
const SECRET = 'stub-secret-value-9e107';
const MIB = 1024 * 1024;
const OK = { environment: 'prod', key: 'SERVICE_A', value: SECRET };

const fetchKey = (t: TestClient) => t.client.fetchKey(TOKEN, 'prod', 'SERVICE_A');
const attempts = (t: TestClient) => t.debug.filter((line) => / attempt \d+\/\d+: /.test(line));

describe('the 8 MiB limit', () => {
  it('refuses a declared Content-Length over the limit without reading the body', async () => {
    let written = 0;
    await withStub(
      (socket) => {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${9 * MIB}\r\n\r\n{"environment":"prod",`);
        written = 1;
        // Nothing more is sent: a client that waited for the body would time out instead.
      },
      async (t) => {
        const started = Date.now();
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN]);
        expect(error.message).toContain('8 MiB');
        expect(Date.now() - started).toBeLessThan(1000);
      },
      { timeoutMs: 5000 },
    );
    expect(written).toBe(1);
  });

  it('cuts off a body that keeps coming past the limit (no Content-Length)', async () => {
    let sent = 0;
    let closed = false;
    await withStub(
      async (socket) => {
        socket.on('close', () => (closed = true));
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"environment":"prod","key":"SERVICE_A","value":"');
        const chunk = Buffer.alloc(256 * 1024, 'x');
        while (!closed && sent < 64 * MIB) {
          sent += chunk.length;
          if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
        }
      },
      async (t) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN]);
        expect(error.message).toContain('8 MiB');
      },
    );
    // Socket buffers hold a few MiB; the client must not have read on to the end.
    expect(sent).toBeLessThan(32 * MIB);
  });

  it('reads no further than a lying Content-Length, and refuses what that leaves', async () => {
    await withStub(
      (socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n');
        socket.end(JSON.stringify({ ...OK, value: SECRET.repeat(1000) }));
      },
      async (t) => {
        await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN, SECRET]);
      },
    );
  });

  it('reports a body cut short of its Content-Length as a broken connection', async () => {
    await withStub(
      (socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"environment":');
        socket.end();
      },
      async (t) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_UNREACHABLE', [TOKEN]);
        expect(error.message).toContain('while reading');
      },
    );
  });
});

describe('timeouts', () => {
  it('gives up on silent headers with RWS_VAULT_TIMEOUT naming the timeout, without retrying', async () => {
    await withStub(
      () => undefined,
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_TIMEOUT', [TOKEN]);
        expect(error.message).toContain('0.3 s');
        expect(error.message).toContain('--timeout');
        expect(stub.requests).toHaveLength(1);
      },
      { timeoutMs: 300, retries: 2 },
    );
  });

  it('gives up on a body that stalls', async () => {
    await withStub(
      (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"environment":'),
      async (t) => {
        await expectVaultError(fetchKey(t), 'RWS_VAULT_TIMEOUT', [TOKEN]);
      },
      { timeoutMs: 300 },
    );
  });
});

describe('a vault that drips its answer', () => {
  /** Writes `head`, then `part` every `everyMs` until the socket closes. */
  const drip = (socket: net.Socket, head: string, part: string, everyMs: number): void => {
    socket.write(head);
    const timer = setInterval(() => (socket.destroyed ? clearInterval(timer) : socket.write(part)), everyMs);
    socket.on('close', () => clearInterval(timer));
  };

  it('a body of one byte at a time, each within the timeout, is given up after each phase timeout and a second', async () => {
    await withStub(
      (socket) => drip(socket, `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${MIB}\r\n\r\n{"environment":"prod","key":"SERVICE_A","value":"`, 'x', 100),
      async (t) => {
        const started = Date.now();
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_TIMEOUT', [TOKEN]);
        expect(error.message).toContain('did not finish its answer within 1.9 s (--timeout 0.3 s for each of connect, headers and body');
        expect(Date.now() - started).toBeLessThan(3500);
      },
      { timeoutMs: 300, retries: 2 },
    );
  });

  it('endless 1xx answers do not hold the request open', async () => {
    await withStub(
      (socket) => drip(socket, '', 'HTTP/1.1 102 Processing\r\n\r\n', 100),
      async (t, stub) => {
        const started = Date.now();
        await expectVaultError(fetchKey(t), 'RWS_VAULT_TIMEOUT', [TOKEN]);
        expect(Date.now() - started).toBeLessThan(3500);
        expect(stub.requests).toHaveLength(1);
      },
      { timeoutMs: 300, retries: 2 },
    );
  });

  it('an error answer whose body drips is still reported by its status, in time', async () => {
    await withStub(
      (socket) => drip(socket, `HTTP/1.1 500 Oops\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{`, ' ', 100),
      async (t) => {
        const started = Date.now();
        await expectVaultError(fetchKey(t), 'RWS_VAULT_UNAVAILABLE', [TOKEN]);
        expect(Date.now() - started).toBeLessThan(3500);
      },
      { timeoutMs: 300 },
    );
  });
});

describe('retries', () => {
  it('retries a 503 and succeeds', async () => {
    await withStub(
      (socket, _request, index) => (index === 0 ? json(socket, 503, { error: { code: 'RWS_AUDIT_UNAVAILABLE', message: 'x' } }) : json(socket, 200, OK)),
      async (t, stub) => {
        expect(await fetchKey(t)).toBe(SECRET);
        expect(stub.requests).toHaveLength(2);
        expect(attempts(t).map((line) => line.replace(/ in \d+ ms$/, ''))).toEqual([
          'vault: GET /api/v1/vault/prod/SERVICE_A attempt 1/3: 503',
          'vault: GET /api/v1/vault/prod/SERVICE_A attempt 2/3: 200',
        ]);
        expect(t.debug.join('\n')).not.toContain(TOKEN);
        expect(t.debug.join('\n')).not.toContain(SECRET);
      },
      { retries: 2 },
    );
  });

  it('gives up after the retries on 502 with RWS_VAULT_UNAVAILABLE saying how many attempts', async () => {
    await withStub(
      (socket) => reply(socket, 502, '<html>bad gateway</html>', { 'content-type': 'text/html' }),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_UNAVAILABLE', [TOKEN]);
        expect(error.message).toContain('3 attempts');
        expect(error.attempts).toBe(3);
        expect(stub.requests).toHaveLength(3);
      },
      { retries: 2 },
    );
  });

  it('does not retry a 500', async () => {
    await withStub(
      (socket) => json(socket, 500, { error: { code: 'RWS_INTERNAL', message: 'internal error' } }),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_UNAVAILABLE', [TOKEN]);
        expect(error.serverCode).toBe('RWS_INTERNAL');
        expect(stub.requests).toHaveLength(1);
      },
      { retries: 2 },
    );
  });

  it('retries a connection reset before any answer, then reports RWS_VAULT_UNREACHABLE', async () => {
    await withStub(
      (socket) => socket.resetAndDestroy(),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_UNREACHABLE', [TOKEN]);
        expect(stub.requests).toHaveLength(3);
        expect(error.message).toContain(stub.url);
      },
      { retries: 2 },
    );
  });

  it('does not retry a connection reset mid-body (a use may have been spent)', async () => {
    await withStub(
      (socket) => {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"environment":"prod","key":"SERVICE_A","value":"${SECRET}`);
        setTimeout(() => socket.resetAndDestroy(), 20);
      },
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_UNREACHABLE', [TOKEN, SECRET]);
        expect(error.message).toContain('while reading');
        expect(stub.requests).toHaveLength(1);
      },
      { retries: 2 },
    );
  });
});

describe('refusals', () => {
  const cases: Array<[number, string, string]> = [
    [400, 'RWS_VAULT_BAD_REQUEST', 'RWS_BAD_REQUEST'],
    [401, 'RWS_VAULT_AUTH', 'RWS_AUTH_FAILED'],
    [403, 'RWS_VAULT_FORBIDDEN', 'RWS_FORBIDDEN'],
    [404, 'RWS_VAULT_NOT_FOUND', 'RWS_NOT_FOUND'],
    [413, 'RWS_VAULT_BAD_REQUEST', 'RWS_BODY_TOO_LARGE'],
    [429, 'RWS_VAULT_RATE_LIMITED', 'RWS_RATE_LIMITED'],
  ];
  it.each(cases)('maps %i to %s once, never retried, with the server code but not its message', async (status, code, serverCode) => {
    await withStub(
      (socket) => json(socket, status, { error: { code: serverCode, message: `leaked-message ${SECRET}` } }, { 'retry-after': '60' }),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), code, [TOKEN, SECRET, 'leaked-message']);
        expect(error.status).toBe(status);
        expect(error.serverCode).toBe(serverCode);
        expect(error.message).toContain(serverCode);
        expect(stub.requests).toHaveLength(1);
      },
      { retries: 2 },
    );
  });

  it('drops a server code that does not look like one', async () => {
    await withStub(
      (socket) => json(socket, 403, { error: { code: `bad code ${SECRET}`, message: 'm' } }),
      async (t) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_FORBIDDEN', [TOKEN, SECRET]);
        expect(error.serverCode).toBeUndefined();
      },
    );
  });

  it('does not follow a redirect', async () => {
    await withStub(
      (socket) => reply(socket, 302, '', { location: 'http://127.0.0.1:1/steal' }),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN]);
        expect(error.message).toContain('302');
        expect(stub.requests).toHaveLength(1);
      },
    );
  });

  it('refuses an answer that is not HTTP', async () => {
    await withStub(
      (socket) => socket.end('SSH-2.0-OpenSSH_9.6\r\n'),
      async (t) => {
        await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN]);
      },
    );
  });

  it.each([
    ['a 100 Continue nobody asked for', 'HTTP/1.1 100 Continue\r\n\r\n'],
    ['a protocol upgrade nobody asked for', 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n'],
  ])('refuses %s as a malformed answer, not a broken connection: not retried (the request was served)', async (_name, head) => {
    await withStub(
      (socket) => socket.write(`${head}HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${JSON.stringify(OK).length}\r\n\r\n${JSON.stringify(OK)}`),
      async (t, stub) => {
        const error = await expectVaultError(fetchKey(t), 'RWS_VAULT_BAD_RESPONSE', [TOKEN, SECRET]);
        expect(error.message).toContain('not valid HTTP');
        expect(stub.requests).toHaveLength(1);
      },
      { retries: 2 },
    );
  });

  it('reports RWS_VAULT_TLS when https:// meets a plain HTTP server, without retrying', async () => {
    let connections = 0;
    const server = net.createServer((socket) => {
      connections++;
      socket.once('data', () => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { client } = await makeClient(`https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { retries: 2 });
    try {
      await expectVaultError(client.health(), 'RWS_VAULT_TLS');
      expect(connections).toBe(1);
    } finally {
      await client.close();
      server.close();
    }
  });
});
