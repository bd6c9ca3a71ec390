// Pipelined requests, one at a time. node:http emits `request` for every request it parses, so
// a request pipelined behind another runs at once, beside it, although its answer can only go out
// after the first one's. When that first answer closes the connection (`Connection: close`: a
// body refused before it was read, a 413, a request without Host), the answer behind it is never
// sent, yet it had run: a use charged, a secret read audited as served (a client that piped a
// read behind a 413 spent a one-use token and got nothing). RFC 9112 §9.6: a server that sends
// `close` MUST NOT process any further requests received on that connection. So a request starts
// only once the answer ahead of it on its connection is done, and not at all if that answer
// closed the connection.
//
// The other way round, a refusal of what comes behind (a parse error, a CONNECT) must wait for
// the answers ahead of it: they have run and been charged (client-errors.ts asks `settled`).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The last request begun on a connection. Its `done` promise is made only when something waits for
 * it (a request pipelined behind, or a refusal): most requests have nothing behind them, and a
 * promise and its reaction per request were a measurable share of a read.
 */
class Last {
  #finished = false;
  #done: Promise<void> | undefined;
  #resolve: (() => void) | undefined;

  constructor(
    readonly req: IncomingMessage,
    /** When the answers ahead of it are done; undefined when there were none. */
    readonly ahead: Promise<void> | undefined,
  ) {}

  /** When its answer is done. */
  get done(): Promise<void> {
    if (this.#finished) return Promise.resolve();
    this.#done ??= new Promise<void>((resolve) => (this.#resolve = resolve));
    return this.#done;
  }

  finish(): void {
    this.#finished = true;
    this.#resolve?.();
  }
}

// Kept on the socket itself (a WeakMap entry per request cost the collector more).
const LAST = Symbol('rws.lastRequest');
const WAITING = Symbol('rws.waitingRequests');
type Tracked = Duplex & { [LAST]?: Last; [WAITING]?: number };

/**
 * Requests parsed and waiting for their turn on one connection, at most; one more closes it.
 * Waiting requests write no answer, so node:http's own back-pressure (it stops reading a
 * connection whose answers pile up unsent) never starts: 27 MB of `GET /healthz` piped behind one
 * held long-poll took the server to 1.9 GB in 8 s. Pausing the socket does not stop node:http's
 * parser, which reads the connection itself; a client this far ahead of its answers is cut off.
 */
export const MAX_WAITING = 32;

export class AnswerOrder {
  /** `app`, run for one request of a connection at a time, in order. */
  wrap(app: Handler): Handler {
    return (req, res) => {
      const socket = req.socket as Tracked;
      // Parsed after an answer that ended the connection had already gone (its body dumped by
      // node:http, with this request behind it): it can never be answered, so it never runs.
      if (socket.destroyed || socket.writableEnded) return;
      const ahead = socket[LAST]?.done;
      const last = new Last(req, ahead);
      socket[LAST] = last;
      // node:http emits a response's 'close' once (emitCloseNT); on() spares a once-wrapper per request.
      res.on('close', () => {
        if (socket[LAST] === last) socket[LAST] = undefined;
        last.finish();
      });
      // The usual case (no request ahead on this connection) runs at once, not a tick later.
      if (ahead === undefined) {
        app(req, res);
        return;
      }
      const waiting = (socket[WAITING] ?? 0) + 1;
      if (waiting > MAX_WAITING) {
        socket.destroy();
        return;
      }
      socket[WAITING] = waiting;
      void ahead.then(() => {
        socket[WAITING] = (socket[WAITING] ?? 1) - 1;
        // The answer ahead ended the connection: node:http has already ended its writing side.
        if (socket.destroyed || socket.writableEnded) return;
        app(req, res);
      });
    };
  }

  /**
   * Resolves once the answers to every request received whole on `socket` are done; undefined
   * when none is in flight. A request still being received (its body cut by --request-timeout,
   * or malformed) is the one refused: its own answer is not waited for.
   */
  settled(socket: Duplex): Promise<void> | undefined {
    const last = (socket as Tracked)[LAST];
    return last === undefined || last.req.complete ? last?.done : last.ahead;
  }
}
