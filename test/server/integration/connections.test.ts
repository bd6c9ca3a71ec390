// Connections as an attacker uses them, with real sockets: slow headers, connections that never
// send anything, and thousands of idle connections from many loopback addresses while a client
// goes on reading secrets.
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, call, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';

let store: TestStore;
let apiKey: string;
beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'conn-secret-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
});
afterAll(async () => {
  await store?.cleanup();
});

function portOf(server: RunningServer): number {
  return Number(new URL(server.url).port);
}

interface RawConnection {
  socket: Socket;
  received: string;
  /** Resolves when the connection is closed (by either side). */
  ended: Promise<void>;
}

/** A raw TCP connection; resolves once connected, and records what it got. */
function open(port: number, localAddress = '127.0.0.1'): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress });
    const connection: RawConnection = { socket, received: '', ended: new Promise((done) => socket.once('close', () => done())) };
    socket.on('data', (chunk: Buffer) => (connection.received += chunk.toString()));
    socket.once('connect', () => {
      socket.on('error', () => undefined); // a reset by the server is what some tests expect
      resolve(connection);
    });
    socket.once('error', reject);
  });
}

describe('timeouts', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(store, ['--headers-timeout', '2', '--request-timeout', '3']);
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('cuts headers sent a byte at a time with 408 at the headers timeout, not many seconds later', async () => {
    const connection = await open(portOf(server));
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => connection.socket.write('X-Slow: 1\r\n'), 200);
    // Before, node:http checked every 30 s: slow headers were held 36-40 s against 10 s, which
    // would outlast this test's 30 s timeout.
    await connection.ended;
    clearInterval(drip);
    expect(connection.received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('answers headers that stop half-way with 408 at the headers timeout, not a silent close', async () => {
    const connection = await open(portOf(server));
    const started = Date.now();
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await connection.ended;
    expect(connection.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n[^]*"code":"RWS_REQUEST_TIMEOUT"/);
    // Within a second of the 2 s timeout (node:http checks every second), not at the fallback.
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('cuts a body sent a byte at a time with 408 at the request timeout', async () => {
    const connection = await open(portOf(server));
    // A valid key: the credential is checked before the body is read, so a bad one gets its 401 at once.
    connection.socket.write(`POST /api/v1/vault/tokens/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nAuthorization: Bearer ${apiKey}\r\n\r\n{`);
    const drip = setInterval(() => connection.socket.write(' '), 200);
    await connection.ended;
    clearInterval(drip);
    expect(connection.received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('closes a connection that never sends a byte once the headers timeout has passed', async () => {
    const connection = await open(portOf(server));
    await connection.ended;
    // Closed by our guard (nothing sent) or, when node:http's own check comes first, with a 408.
    expect(connection.received).toMatch(/^$|^HTTP\/1\.1 408 /);
  });

  it('keeps a connection that sends its request in time', async () => {
    const connection = await open(portOf(server));
    connection.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await connection.ended;
    expect(connection.received).toMatch(/^HTTP\/1\.1 200 /);
  });
});

describe('the connection cap', () => {
  it('closes the connection idle for longest to admit a newcomer, and refuses one only when every connection is busy', async () => {
    const server = await startServer(store, ['--max-connections', '2']);
    const port = portOf(server);
    try {
      const oldest = await open(port);
      const newer = await open(port);
      // A newcomer at the cap: the oldest idle connection makes room, the newer one stays.
      const newcomer = await open(port);
      newcomer.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await newcomer.ended;
      expect(newcomer.received).toMatch(/^HTTP\/1\.1 200 /);
      await oldest.ended;
      expect(oldest.received).toBe('');
      expect(newer.socket.destroyed).toBe(false);
      newer.socket.destroy();
      // Two requests in flight (their bodies never finish): a third connection is refused.
      const busy = await Promise.all([open(port), open(port)]);
      // `Expect: 100-continue` is answered once the request, let in by its key, reads its body:
      // that is the sign that the request is in flight.
      for (const { socket } of busy) socket.write(`POST /api/v1/vault/tokens/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nAuthorization: Bearer ${apiKey}\r\nExpect: 100-continue\r\n\r\n{`);
      await until(async () => busy.every((connection) => connection.received.includes('100 Continue')));
      const refused = await open(port);
      await refused.ended;
      expect(refused.received).toBe('');
      for (const { socket } of busy) expect(socket.destroyed).toBe(false);
      for (const { socket } of busy) socket.destroy();
    } finally {
      await server.stop();
    }
  });

  it('reads secrets while 3,000 idle connections from 300 addresses press on a cap of 1,000: the idle ones are closed first', async () => {
    const server = await startServer(store, ['--max-connections', '1000']);
    const idle: RawConnection[] = [];
    const reader = new Agent({ connections: 4, localAddress: '127.0.9.1' });
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
      const read = () => call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t, dispatcher: reader });
      expect((await read()).status).toBe(200);
      const statuses: number[] = [];
      for (let batch = 0; batch < 30; batch++) {
        const opened = await Promise.all(Array.from({ length: 100 }, (_, i) => open(portOf(server), `127.3.${batch}.${i + 1}`).catch(() => undefined)));
        for (const socket of opened) if (socket !== undefined) idle.push(socket);
        statuses.push(...(await Promise.all([read(), read(), read()])).map((reply) => reply.status));
      }
      expect(statuses).toEqual(Array(90).fill(200));
      // The server holds no more than its cap: most idle connections have been closed by it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const stillOpen = idle.filter(({ socket }) => !socket.destroyed && socket.readyState === 'open').length;
      expect(stillOpen).toBeLessThanOrEqual(1000);
      expect(idle.length).toBe(3000);
    } finally {
      for (const { socket } of idle) socket.destroy();
      await reader.close();
      await server.stop();
    }
  });
});

describe('the open-file limit', () => {
  /** `serve` under `ulimit -n 200`; resolves with its URL and a stop function. */
  async function serveLimited(extra: string[]): Promise<{ url: string; stderr: () => string; stop: () => Promise<void> }> {
    const child = spawn('sh', ['-c', 'ulimit -n 200 && exec "$0" "$@"', BIN, 'serve', '--store', store.dir, '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /listening on (\S+)\n/.exec(out);
        if (match?.[1]) resolve(match[1]);
      });
      void exited.then(() => reject(new Error(`server exited: ${stderr}`)));
    });
    return { url, stderr: () => stderr, stop: async () => void (child.kill('SIGTERM'), await exited) };
  }

  it('keeps the cap under ulimit -n, so 400 idle connections never run the server out of descriptors while a client reads', async () => {
    const server = await serveLimited([]);
    const idle: RawConnection[] = [];
    try {
      const t = await token(server, apiKey, { environment: 'production', key_pattern: 'SERVICE_B_*' });
      // Every read on a new connection: that is what the descriptor limit used to reset.
      let readers = 0;
      const read = async () => {
        const reader = new Agent({ localAddress: `127.0.10.${++readers}` });
        try {
          return await call(`${server.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t, dispatcher: reader });
        } catch {
          return { status: 0 };
        } finally {
          await reader.close();
        }
      };
      const statuses: number[] = [];
      for (let batch = 0; batch < 8; batch++) {
        const opened = await Promise.all(Array.from({ length: 50 }, (_, i) => open(Number(new URL(server.url).port), `127.5.${batch}.${i + 1}`).catch(() => undefined)));
        for (const connection of opened) if (connection !== undefined) idle.push(connection);
        statuses.push((await read()).status);
      }
      expect(statuses).toEqual(Array(8).fill(200));
      expect(server.stderr()).not.toMatch(/EMFILE|internal error/);
    } finally {
      for (const { socket } of idle) socket.destroy();
      await server.stop();
    }
  });

  it('warns when --max-connections is above what the limit allows, and uses what it allows', async () => {
    const server = await serveLimited(['--max-connections', '5000']);
    try {
      expect(server.stderr()).toContain('secrets-server: warning RWS_CONNECTIONS_LIMITED: --max-connections 5000 is above what the open-file limit (200) allows; using 136 (raise ulimit -n)');
    } finally {
      await server.stop();
    }
  });
});
