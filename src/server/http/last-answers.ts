// From the stop signal on, every answer closes its connection. A keep-alive client sends its next
// request on the connection it has as soon as an answer ends, so a busy connection was never idle
// when the server looked for idle ones to close: it went on being served until the 5 s cut, which
// reset it mid-request (50 clients under load: 50 ECONNRESET, and every stop took 5 s). Told
// `Connection: close`, the client opens a new connection, which is refused: a clean failure that
// every client retries elsewhere.
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
