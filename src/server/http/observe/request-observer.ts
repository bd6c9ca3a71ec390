// Ties metrics and the request log to the app: the app reports each answer's outcome (observe),
// and the wrapper around the app times the request and reports it once the response is closed.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExchangeObserver, ExchangeOutcome } from './exchange-observer.js';
import type { ServerMetrics } from './metrics.js';
import { requestLogLine } from './request-log.js';
import { routeLabel } from './route-label.js';

export interface RequestObserverOptions {
  metrics?: ServerMetrics;
  /** Receives one JSON line per request (no newline). */
  requestLog?: (line: string) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function observeRequests(options: RequestObserverOptions): { observe: ExchangeObserver; wrap: (app: Handler) => Handler } {
  const outcomes = new WeakMap<IncomingMessage, ExchangeOutcome>();
  const observe: ExchangeObserver = (req, outcome) => {
    // Only the request log reads it back; a WeakMap entry per request costs the collector too.
    if (options.requestLog !== undefined) outcomes.set(req, outcome);
    options.metrics?.observeOutcome(outcome);
  };
  const wrap = (app: Handler): Handler => {
    if (options.metrics === undefined && options.requestLog === undefined) return app;
    const requestLog = options.requestLog;
    return (req, res) => {
      const started = performance.now();
      // Only the request log needs these (the address is gone once the socket is destroyed).
      const time = requestLog === undefined ? undefined : new Date();
      const client = requestLog === undefined ? '' : (req.socket.remoteAddress ?? 'unknown');
      // node:http emits a response's 'close' once (emitCloseNT); on() spares a once-wrapper per request.
      res.on('close', () => {
        const durationMs = performance.now() - started;
        const route = routeLabel(req.url);
        // Closed before an answer went out (the client hung up, or a timeout cut it): never the
        // 200 a response object starts with. 499 is what the audit row says of such a request.
        const status = res.headersSent ? res.statusCode : 499;
        options.metrics?.observeRequest(route, status, durationMs / 1000);
        if (requestLog !== undefined && time !== undefined) {
          const apiKeyId = outcomes.get(req)?.seen.api_key_id ?? null;
          requestLog(requestLogLine({ time, method: req.method ?? '', route, status, durationMs, apiKeyId, client }));
        }
      });
      app(req, res);
    };
  };
  return { observe, wrap };
}
