// `Expect: 100-continue` on raw sockets to the real server: the body is invited (100 Continue)
// only once the request's credential has let it in. A request without a valid credential gets its
// refusal and no 100, through the usual path: audited as `auth.failure`, counted toward the 429.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, makeApiKey, makeStore, type RunningServer, startServer, type TestStore } from '../helpers/server.js';

let store: TestStore;
let server: RunningServer;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'expect-continue-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
  server = await startServer(store);
});
afterAll(async () => {
  expect(await server?.stop()).toBe(0);
  await store?.cleanup();
});

const BODY = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });

function head(authorization: string | undefined, before = ''): string {
  const credential = authorization === undefined ? '' : `Authorization: ${authorization}\r\n`;
  return `${before}POST /api/v1/vault/tokens/generate HTTP/1.1\r\nHost: x\r\n${credential}Content-Type: application/json\r\nContent-Length: ${BODY.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
}

/**
 * Writes `request` (headers only, as a client that waits for 100 Continue does), sends the body
 * if and when 100 Continue comes, and reads until the server closes the connection (the request
 * asks it to).
 */
async function expecting(request: string, localAddress = '127.0.0.1'): Promise<string> {
  const { hostname, port } = new URL(server.url);
  return new Promise<string>((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), localAddress });
    let text = '';
    let sent = false;
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (!sent && text.includes('HTTP/1.1 100 Continue\r\n\r\n')) {
        sent = true;
        socket.write(BODY);
      }
    });
    socket.on('error', (error) => (text === '' ? reject(error) : undefined));
    socket.on('close', () => resolve(text));
    socket.once('connect', () => socket.write(request));
  });
}

const statusLines = (text: string) => text.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? [];

describe('Expect: 100-continue', () => {
  it('invites the body of a request with a valid API key, and serves it', async () => {
    const received = await expecting(head(`Bearer ${apiKey}`));
    expect(statusLines(received)).toEqual(['HTTP/1.1 100 Continue', 'HTTP/1.1 201 Created']);
    expect(received).toContain('"token_type":"Bearer"');
  });

  it('refuses a request without a valid credential with a 401 and no 100 Continue, audited and counted like any 401', async () => {
    const before = auditRowsSync(store.dir).length;
    const address = '127.0.0.91';
    const credentials = [undefined, 'Basic dXNlcjpwYXNz', 'Bearer', `Bearer rws_sk_${'0'.repeat(32)}`, 'Bearer not.a.token'];
    for (const credential of credentials) {
      const received = await expecting(head(credential), address);
      expect({ credential, answers: statusLines(received) }).toEqual({ credential, answers: ['HTTP/1.1 401 Unauthorized'] });
      expect(received).toMatch(/\r\nconnection: close\r\n/i);
      expect(received).toContain('"code":"RWS_AUTH_FAILED"');
    }
    const rows = auditRowsSync(store.dir).slice(before);
    expect(rows.map((row) => [row.event, row.status, row.client])).toEqual(credentials.map(() => ['auth.failure', 401, address]));
    // Counted toward the address's limit: 21 401s in all, then 429, still without a 100.
    for (let i = credentials.length; i < 21; i++) expect(statusLines(await expecting(head(undefined), address))).toEqual(['HTTP/1.1 401 Unauthorized']);
    expect(statusLines(await expecting(head(undefined), address))).toEqual(['HTTP/1.1 429 Too Many Requests']);
    // The right key from that address is still let in, and its body invited.
    expect(statusLines(await expecting(head(`Bearer ${apiKey}`), address))).toEqual(['HTTP/1.1 100 Continue', 'HTTP/1.1 201 Created']);
  });

  it('keeps the order of pipelined requests: the refusal follows the answer ahead of it', async () => {
    const received = await expecting(head(undefined, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), '127.0.0.92');
    expect(statusLines(received)).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 401 Unauthorized']);
  });
});
