// `Expect: 100-continue` (RFC 9110 §10.1.1): the client sends its headers and waits to be told
// to send the body. node:http, with no 'checkContinue' listener, sends 100 Continue as soon as the
// headers are parsed, before any route has looked at the credential: a client with no credential
// could make the server invite its body. Here the 100 goes out only when a handler starts to read
// the body, which every route does after its credential (and the 429 gate) let the request in. A
// request refused before that (401, 429, 403, 404, 405, 413 by Content-Length) gets its refusal
// through the usual path, audited and counted toward the 429 like any, and no 100; its answer
// ends the connection, since its body was never read (app.ts, and node:http does the same).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

// The answer of each request still waiting for its 100.
const waiting = new WeakMap<IncomingMessage, ServerResponse>();

/** Makes `server` invite a body only when it is read. Call before it listens. */
export function deferContinue(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    waiting.set(req, res);
    // From here a request like any other: the connection guard, the pipelining order, the app.
    server.emit('request', req, res);
  });
}

/** Sends the 100 Continue `req` is waiting for, if any: its body is about to be read. */
export function inviteBody(req: IncomingMessage): void {
  const res = waiting.get(req);
  if (res === undefined) return;
  waiting.delete(req);
  if (!res.headersSent) res.writeContinue();
}
