// Listening: plain HTTP on loopback, HTTPS anywhere; graceful close that finishes in-flight
// requests (bounded) before the state and audit files are closed. Connections are capped and
// timed (limits/connections.ts); metrics and the request log are attached here, outside the app.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { isIP, Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { type AppDeps, createApp } from './app.js';
import { clientErrorListener, connectListener, refuseBadFraming, refuseExpectation } from './client-errors.js';
import { deferContinue } from './expect-continue.js';
import { AnswerOrder } from './in-order.js';
import { LastAnswers } from './last-answers.js';
import { ConnectionGuard, DEFAULT_MAX_CONNECTIONS } from './limits/connections.js';
import { listenMetrics } from './observe/metrics-listener.js';
import { ServerMetrics } from './observe/metrics.js';
import { observeRequests } from './observe/request-observer.js';
import { type TlsPair } from './tls-files.js';
import { observeLoads } from '../store/observed-source.js';
import { auditHeadMoved, DEFAULT_PER_KEY, heldShareOf, LongPolls } from './batch/long-polls.js';
import { ServerUsageError } from '../usage-error.js';

export interface ListenOptions {
  host: string;
  port: number;
  tls?: TlsPair;
  insecureListen?: boolean;
  maxConnections?: number;
  /** How long a client may take to send a request's headers, and to start one on a new connection. */
  headersTimeoutMs?: number;
  /** How long a client may take to send a whole request, body included. */
  requestTimeoutMs?: number;
  /** Serve GET /metrics on this separate address. */
  metricsListen?: { host: string; port: number };
  /** One JSON line per request (`--log-format json`). */
  requestLog?: (line: string) => void;
  /** Batch requests held by `?wait=` at once (default: three quarters of maxConnections). */
  maxLongPolls?: number;
  /** The same, per API key. */
  maxLongPollsPerKey?: number;
}

export interface RunningServer {
  url: string;
  metricsUrl: string | undefined;
  /** Serves a new certificate and key to new connections (HTTPS only; a no-op otherwise). */
  setTls(pair: TlsPair): void;
  /** Finishes in-flight requests, then runs `beforeStateCloses`, then closes the state. */
  close(beforeStateCloses?: () => Promise<void>): Promise<void>;
}

const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** How long after the stop signal requests are still taken, each answered with `Connection: close`. */
const LAST_ANSWERS_MS = 250;
const TLS_OPTIONS = { minVersion: 'TLSv1.2' } as const;

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export function checkListen(options: ListenOptions): void {
  if (!options.tls && !options.insecureListen && !isLoopback(options.host)) {
    throw new ServerUsageError(`refusing to serve secrets over plain HTTP on ${options.host}`, 'give --tls-cert and --tls-key, or listen on 127.0.0.1 (--insecure-listen overrides)');
  }
}

export async function listen(options: ListenOptions, deps: AppDeps): Promise<RunningServer> {
  checkListen(options);
  // Always counted: an admin key may read them on this listener (GET /metrics), and
  // `--metrics-listen` serves them to a scraper on an address of its own.
  const metrics = new ServerMetrics();
  const observer = observeRequests({ metrics, requestLog: options.requestLog });
  const secrets = observeLoads(deps.secrets, (environment, state) => metrics.observeSopsFile(environment, state));
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const limits = { total: options.maxLongPolls ?? heldShareOf(maxConnections), perKey: options.maxLongPollsPerKey ?? DEFAULT_PER_KEY };
  const longPolls = new LongPolls(limits, secrets.watch?.bind(secrets), auditHeadMoved(deps.state));
  // node:http checks the headers and request timeouts only every connectionsCheckingInterval
  // (30 s by default): slow headers were held 36-40 s against a 10 s timeout. Every second cuts
  // slow headers and slow bodies within a second of their timeout.
  const headersTimeout = options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
  const timing = { connectionsCheckingInterval: 1_000, headersTimeout, requestTimeout: Math.max(options.requestTimeoutMs ?? 30_000, headersTimeout) };
  const last = new LastAnswers();
  // Host is checked by refuseBadFraming rather than by node:http, whose 400 has no body and
  // which still hands the app a request pipelined behind the refused one.
  const http = { ...timing, requireHostHeader: false, ServerResponse: last.Response };
  // Pipelined requests run one after another, and none behind an answer that closed the connection.
  const order = new AnswerOrder();
  const app = order.wrap(refuseBadFraming(observer.wrap(createApp({ ...deps, secrets, metrics, longPolls, observe: observer.observe }))));
  const server: Server = options.tls ? createHttpsServer({ ...http, ...TLS_OPTIONS, cert: options.tls.cert, key: options.tls.key }, app) : createHttpServer(http, app);
  server.keepAliveTimeout = 5_000;
  // Requests the parser refuses (and ones cut by the timeouts above) get a JSON error too, and so
  // does CONNECT, each after the answers to the requests ahead of it on its connection.
  server.on('clientError', clientErrorListener(order));
  server.on('connect', connectListener(order));
  server.on('checkExpectation', order.wrap(refuseExpectation));
  // 100 Continue only once a handler reads the body, after the credential: not to anyone who asks.
  deferContinue(server);
  const guard = new ConnectionGuard({ maxConnections, firstRequestMs: headersTimeout });
  guard.attach(server);
  metrics.connections = guard;
  metrics.longPolls = longPolls;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (options.metricsListen !== undefined) {
    try {
      ({ server: metricsServer, url: metricsUrl } = await listenMetrics(options.metricsListen, metrics));
    } catch (error) {
      server.close();
      throw error;
    }
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${address.port}`,
    metricsUrl,
    setTls: (pair) => {
      if (options.tls) (server as HttpsServer).setSecureContext({ ...TLS_OPTIONS, cert: pair.cert, key: pair.key });
    },
    close: (beforeStateCloses) => {
      closing ??= new Promise<void>((resolve) => {
        last.stop();
        // Held long-polls answer now (with what a fresh request would get) instead of being cut.
        longPolls.closeAll();
        metricsServer?.close();
        metricsServer?.closeAllConnections();
        // Every answer from now on closes its connection (LastAnswers), so a busy keep-alive
        // connection ends after its answer. New connections are refused at once. One idle at this
        // moment may carry a request already on its way, which closing it would reset mid-request
        // (node:http's close() closes idle connections at once: 46 of 50 busy clients got
        // ECONNRESET on a reused connection): idle ones are closed a moment later, and whatever
        // comes meanwhile is answered, with a close.
        // (The net-level close: node:http's own would close the idle ones now. Its connections
        // check interval is unref'd and stops with the process.)
        let idle: NodeJS.Timeout | undefined;
        const later = setTimeout(() => {
          server.closeIdleConnections();
          idle = setInterval(() => server.closeIdleConnections(), 50);
        }, LAST_ANSWERS_MS).unref();
        NetServer.prototype.close.call(server, () => {
          // Closed before the moment was over (an idle server closes at once): its timer must not
          // start an interval nobody clears, which kept a process that closes slowly alive.
          clearTimeout(later);
          clearInterval(idle);
          resolve();
        });
        // In-flight requests get a few seconds; then their connections are cut.
        setTimeout(() => server.closeAllConnections(), 5_000).unref();
      })
        .then(() => deps.refusals?.close())
        .then(() => beforeStateCloses?.())
        .then(() => deps.state.close());
      return closing;
    },
  };
}
