// What the HTTP layer asks of the web console, when `serve --console` loaded it. Only this
// interface is known here: without --console no console module is ever imported, and a session
// cookie is just an unknown header.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeyRecord } from '../state/state-store.js';
import type { Exchange } from './handlers.js';
import type { Route } from './route.js';

export interface ConsoleHooks {
  /** Answers a request for a console page or asset (`/console/…` but not `/console/api/…`); false for any other. */
  serveAsset(req: IncomingMessage, res: ServerResponse): boolean;
  /** The console's own credentialed routes (sign-in, session, sign-out). */
  route(method: string, path: string): Route | undefined;
  /**
   * The admin key behind the request's session cookie; undefined when it carries none. A cookie
   * of no live session is a 401; a state-changing request without the session's CSRF token and a
   * matching Origin is a 403.
   */
  sessionKey(x: Exchange): Promise<ApiKeyRecord | undefined>;
  /** For the 429 gate: does the request carry a live session's cookie? */
  holdsValidSession(req: IncomingMessage, now: Date): Promise<boolean>;
}
