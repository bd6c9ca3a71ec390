// Listening: plain HTTP on loopback, HTTPS anywhere; graceful close that finishes in-flight
// requests (bounded) before the state and audit files are closed.
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import { type AppDeps, createApp } from './app.js';
import { ServerUsageError } from '../usage-error.js';

export interface ListenOptions {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer };
  insecureListen?: boolean;
}

export interface RunningServer {
  url: string;
  /** Finishes in-flight requests, then runs `beforeStateCloses`, then closes the state. */
  close(beforeStateCloses?: () => Promise<void>): Promise<void>;
}

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
  const app = createApp(deps);
  const server: Server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, app) : createHttpServer(app);
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `${options.tls ? 'https' : 'http'}://${host}:${address.port}`,
    close: (beforeStateCloses) => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
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
