// Pipelined requests, one at a time. node:http emits `request` for every request it parses, so
// a request pipelined behind another runs at once, beside it, although its answer can only go out
// after the first one's. When that first answer closes the connection (`Connection: close`: a
// body refused before it was read, a 413, a request without Host), the answer behind it is never
// sent, yet it had run: a use charged, a secret read audited as served (a client that piped a
// read behind a 413 spent a one-use token and got nothing). RFC 9112 §9.6: a server that sends
// `close` MUST NOT process any further requests received on that connection. So a request starts
// only once the answer ahead of it on its connection is done, and not at all if that answer
// closed the connection.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function runInOrder(app: Handler): Handler {
  // The end of the last answer begun on each connection that still has one in flight.
  const last = new WeakMap<Duplex, Promise<void>>();
  return (req, res) => {
    const socket = req.socket;
    const ahead = last.get(socket);
    const done = new Promise<void>((resolve) => res.once('close', resolve));
    last.set(socket, done);
    void done.then(() => {
      if (last.get(socket) === done) last.delete(socket);
    });
    // The usual case (no request ahead on this connection) runs at once, not a tick later.
    if (ahead === undefined) {
      app(req, res);
      return;
    }
    void ahead.then(() => {
      // The answer ahead ended the connection: node:http has already ended its writing side.
      if (socket.destroyed || socket.writableEnded) return;
      app(req, res);
    });
  };
}
