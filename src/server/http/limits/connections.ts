// Connections as a resource: a cap on open connections, idle ones closed first when the cap is
// reached, and a connection that never sends a request closed after the headers timeout.
//
// Why not server.maxConnections alone: it refuses the newcomer, so 20,000 idle connections opened
// by anyone lock every legitimate client out. Here a newcomer at the cap closes the connection
// idle for longest (no request in flight: a keep-alive connection between requests, or one that
// has sent nothing yet); only when every connection is busy is the newcomer refused.
// Why the idle timer: node:http's headersTimeout only starts with the first byte of a request, so
// a connection that sends nothing at all is otherwise held until the client lets go.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export const DEFAULT_MAX_CONNECTIONS = 4096;

/**
 * This timer is the fallback, past node:http's own check (every second, server.ts), which answers
 * a connection whose headers are late, half-sent ones included, with the 408 clients are promised.
 * At the headers timeout itself it came first whenever the client had gone quiet, and closed a
 * connection that had sent half its headers with no answer at all.
 */
const FALLBACK_MARGIN_MS = 2_000;

interface Entry {
  socket: Socket;
  busy: number;
  /** The idle timer for a connection that has sent nothing yet still runs. */
  waitingForFirst: boolean;
}

export interface ConnectionGuardOptions {
  maxConnections: number;
  /** How long a connection may stay silent before its first request (the headers timeout). */
  firstRequestMs: number;
}

export class ConnectionGuard {
  // Insertion order is recency: an entry is moved to the end whenever it finishes a request.
  readonly #open = new Map<string, Entry>();
  readonly #bySocket = new WeakMap<Socket, { key: string; entry: Entry }>();
  #refused = 0;
  #evicted = 0;

  constructor(private readonly options: ConnectionGuardOptions) {}

  get open(): number {
    return this.#open.size;
  }

  get refused(): number {
    return this.#refused;
  }

  get evicted(): number {
    return this.#evicted;
  }

  /** Watches `server`: call before it listens. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#accept(socket));
    server.on('request', (req, res) => {
      const entry = this.#entryOf(req.socket);
      if (entry === undefined) return;
      entry.busy++;
      if (entry.waitingForFirst) {
        entry.waitingForFirst = false;
        entry.socket.setTimeout(0); // from here node:http's own timeouts apply
      }
      // node:http emits a response's 'close' once (emitCloseNT); on() spares a once-wrapper per request.
      res.on('close', () => {
        entry.busy--;
        const key = this.#bySocket.get(req.socket)?.key ?? keyOf(entry.socket);
        // Only if it is still this connection's: a client that reset it and came back from the
        // same port has a new entry under the same key, which must not be replaced by this one.
        if (this.#open.get(key) === entry) {
          this.#open.delete(key);
          this.#open.set(key, entry);
        }
      });
    });
  }

  /** The entry of the connection a request came on (remembered per socket: keep-alive connections ask often). */
  #entryOf(socket: Socket): Entry | undefined {
    const known = this.#bySocket.get(socket);
    if (known !== undefined && this.#open.get(known.key) === known.entry) return known.entry;
    const key = keyOf(socket);
    const entry = this.#open.get(key);
    if (entry !== undefined) this.#bySocket.set(socket, { key, entry });
    return entry;
  }

  #accept(socket: Socket): void {
    const key = keyOf(socket);
    if (this.#open.size >= this.options.maxConnections && !this.#evictIdle()) {
      this.#refused++;
      socket.destroy();
      return;
    }
    const entry: Entry = { socket, busy: 0, waitingForFirst: true };
    this.#open.set(key, entry);
    socket.setTimeout(this.options.firstRequestMs + FALLBACK_MARGIN_MS);
    socket.on('timeout', () => {
      if (entry.busy === 0) socket.destroy();
    });
    socket.once('close', () => {
      if (this.#open.get(key) === entry) this.#open.delete(key);
    });
  }

  /** Closes the connection idle for longest; false when every connection is busy. */
  #evictIdle(): boolean {
    for (const [key, entry] of this.#open) {
      if (entry.busy > 0) continue;
      this.#open.delete(key);
      entry.socket.destroy();
      this.#evicted++;
      return true;
    }
    return false;
  }
}

/** The TCP connection's identity, the same for a TLS socket and the socket under it. */
function keyOf(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localPort}`;
}
