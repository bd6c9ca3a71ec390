// The web console's server side, loaded only by `serve --console`: its files, its session routes
// and the session check the admin routes use when a request carries the cookie.
import type { ConsoleHooks } from '../http/console-hooks.js';
import type { HandlerDeps } from '../http/handlers.js';
import { ConsoleAssets } from './assets.js';
import { ConsoleSessions } from './sessions.js';

/** `deps` is completed after this is made (the console is one of them), so it is read at each request. */
export function createConsole(deps: HandlerDeps): ConsoleHooks {
  const assets = new ConsoleAssets();
  const sessions = new ConsoleSessions(deps);
  return {
    serveAsset: (req, res) => assets.serve(req, res),
    route: (method, path) => sessions.route(method, path),
    sessionKey: (x) => sessions.sessionKey(x),
    holdsValidSession: (req, now) => sessions.holdsValidSession(req, now),
  };
}
