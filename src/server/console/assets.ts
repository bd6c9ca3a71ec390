// The console's files (dist/console, made by build/bundle-console.mjs), read once at start and
// served from memory with the security headers. Nothing is fetched from anywhere else: the page's
// policy allows only this server's own script, style and images.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RwsError } from '../../errors.js';
import { SECURITY_HEADERS } from '../http/request.js';

const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

interface Asset {
  body: Buffer;
  type: string;
}

export class ConsoleAssets {
  readonly #assets = new Map<string, Asset>();

  constructor(dir: URL = new URL('../../console/', import.meta.url)) {
    for (const [name, type] of Object.entries(FILES)) {
      try {
        this.#assets.set(name, { body: readFileSync(new URL(name, dir)), type });
      } catch (error) {
        throw new RwsError('RWS_INTERNAL', `the console's file ${name} is missing from this installation`, { hint: 'reinstall run-with-secrets, or run npm run build in a checkout', cause: error });
      }
    }
  }

  /** See ConsoleHooks.serveAsset. */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    const target = req.url ?? '/';
    const path = target.split('?', 1)[0] as string;
    if (path !== '/console' && (!path.startsWith('/console/') || path.startsWith('/console/api/'))) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { type: 'text/plain; charset=utf-8', body: Buffer.from('use GET\n') }, req.method, { allow: 'GET, HEAD' });
      return true;
    }
    if (path === '/console') {
      send(res, 308, { type: 'text/plain; charset=utf-8', body: Buffer.from('see /console/\n') }, req.method, { location: '/console/' });
      return true;
    }
    const name = path === '/console/' ? 'index.html' : path.slice('/console/'.length);
    const asset = this.#assets.get(name);
    if (asset === undefined) send(res, 404, { type: 'text/plain; charset=utf-8', body: Buffer.from('not found\n') }, req.method);
    else send(res, 200, asset, req.method);
    return true;
  }
}

function send(res: ServerResponse, status: number, asset: Asset, method: string | undefined, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...extra,
    ...SECURITY_HEADERS,
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
    'content-type': asset.type,
    'content-length': asset.body.length,
  });
  res.end(method === 'HEAD' ? undefined : asset.body);
}
