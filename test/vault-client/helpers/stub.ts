// A raw TCP server that speaks just enough HTTP/1.1 to answer the client with whatever a test
// needs, including answers no HTTP library would send: lies, garbage, resets, silence.
import net from 'node:net';
import type { VaultClientOptions } from '../../../src/vault-client/index.js';
import { makeClient, type TestClient } from './client.js';

export interface StubRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export type Responder = (socket: net.Socket, request: StubRequest, index: number) => void | Promise<void>;

export interface Stub {
  url: string;
  requests: StubRequest[];
  close(): Promise<void>;
}

export async function startStub(respond: Responder): Promise<Stub> {
  const requests: StubRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const request = takeRequest(buffer);
      if (request === undefined) return;
      buffer = request.rest;
      requests.push(request.request);
      void respond(socket, request.request, requests.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function takeRequest(buffer: Buffer): { request: StubRequest; rest: Buffer } | undefined {
  const end = buffer.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [line = '', ...fields] = buffer.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
  }
  const length = Number(headers['content-length'] ?? 0);
  if (buffer.length < end + 4 + length) return undefined;
  const [method = '', path = ''] = line.split(' ');
  const body = buffer.subarray(end + 4, end + 4 + length).toString('utf8');
  return { request: { method, path, headers, body }, rest: buffer.subarray(end + 4 + length) };
}

/** A complete answer on a connection that is then closed. */
export function reply(socket: net.Socket, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const head = { 'content-type': 'application/json', 'content-length': String(bytes.length), connection: 'close', ...headers };
  socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 ${status} Status\r\n${Object.entries(head).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`), bytes]));
}

export const json = (socket: net.Socket, status: number, value: unknown, headers: Record<string, string> = {}): void => reply(socket, status, JSON.stringify(value), headers);

/** Runs `run` with a stub answering by `respond` and a client pointed at it; closes both. */
export async function withStub(respond: Responder, run: (t: TestClient, stub: Stub) => Promise<void>, options: Partial<VaultClientOptions> = {}): Promise<void> {
  const stub = await startStub(respond);
  const t = await makeClient(stub.url, options);
  try {
    await run(t, stub);
  } finally {
    await t.client.close();
    await stub.close();
  }
}
