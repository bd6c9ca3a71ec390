// From the stop signal on, every answer closes its connection. A keep-alive client sends its next
// request on the connection it has as soon as an answer ends: a connection the server closes as
// idle may already carry it, and the client gets ECONNRESET for a request it cannot tell was
// served (46 of 50 busy clients at a SIGTERM). Told `Connection: close` with its answer, the
// client opens a new connection instead, which is refused: a clean failure, retried elsewhere.
//
// Decided when an answer's head is written, by node:http's own response class, not by tracking
// every request: a Set entry and a 'close' listener per request cost about an eighth of the
// secret-read rate (bench:server), for a moment that comes once in a server's life.
import { ServerResponse } from 'node:http';

export class LastAnswers {
  #stopping = false;
  /** For node:http's `ServerResponse` option: an answer whose head is written after stop() closes its connection. */
  readonly Response: typeof ServerResponse;

  constructor() {
    const answers = this;
    class LastAnswerResponse extends ServerResponse {
      // Every head goes through here, an implicit one (res.end without writeHead) included.
      override writeHead(...args: unknown[]): this {
        if (answers.#stopping && !this.headersSent) this.setHeader('connection', 'close');
        return (super.writeHead as (...a: unknown[]) => this)(...args);
      }
    }
    this.Response = LastAnswerResponse as unknown as typeof ServerResponse;
  }

  /** Answers not yet begun, and every later one, close their connections. */
  stop(): void {
    this.#stopping = true;
  }
}
