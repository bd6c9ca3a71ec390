// `--metrics-listen HOST:PORT`: GET /metrics on a listener of its own, so that the public
// listener never shows it (metrics are for the operator's scraper, usually on loopback).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { ServerUsageError } from '../../usage-error.js';
import { explainSystemError } from '../../system-errors.js';
import type { ServerMetrics } from './metrics.js';

export function parseListenAddress(text: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !(port >= 0 && port <= 65535) || (match?.[1] !== undefined && isIP(host) !== 6)) {
    throw new ServerUsageError(`Expected ${flag} to be HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, got ${text.slice(0, 64)}`);
  }
  return { host, port };
}

/**
 * Connections the metrics listener holds at once. It has no credential to check, so anyone who can
 * reach it (any local user, on loopback) could open connections until the process ran out of
 * descriptors: 400 idle ones under `ulimit -n 200` made the vault listener reset every client.
 * A scraper needs one or two; these fit in the descriptors the vault's own cap leaves aside.
 */
export const METRICS_MAX_CONNECTIONS = 16;

export async function listenMetrics(address: { host: string; port: number }, metrics: ServerMetrics): Promise<{ url: string; server: Server }> {
  // Timeouts checked every second, as on the vault listener, so a held slot is freed promptly.
  const server = createServer({ connectionsCheckingInterval: 1_000, headersTimeout: 10_000, requestTimeout: 10_000 }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('use GET\n');
      return;
    }
    const text = metrics.render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  });
  server.maxConnections = METRICS_MAX_CONNECTIONS;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const refused = (error: Error): void => reject(explainSystemError(error, 'metrics') ?? error);
    server.once('error', refused);
    server.listen(address.port, address.host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return { url: `http://${host}:${bound.port}/metrics`, server };
}
