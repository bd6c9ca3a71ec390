// The admin routes: which path and method runs which handler, and the audit event it records.
// Paths are matched segment by segment as sent (no percent or dot-segment decoding); an empty
// segment is no route. `/api/v1/vault/tokens` and `tokens/{jti}` are admin paths (`tokens` is a
// reserved environment name, so no environment is ever shadowed); `tokens/generate` and
// `tokens/revoke` stay the read API's (a jti is at least 16 characters).
import type { AuditEventName } from '../../audit/record.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { handlerMethod, methodNotAllowed } from '../methods.js';
import type { Route } from '../route.js';
import { readAudit } from './audit-handler.js';
import { readChart } from './chart-handler.js';
import { createKey, listKeys, revokeKey, showKey } from './key-handlers.js';
import { deleteSecret, listEnvironmentSummaries, listNames, setSecret } from './secret-handlers.js';
import { readStatus } from './status-handler.js';
import { listTokens, revokeTokenById } from './token-handlers.js';

type Handler = [AuditEventName, (x: Exchange) => Promise<Reply>];

export function adminRoute(deps: HandlerDeps, method: string, path: string, query: string): Route | undefined {
  const handlers = match(deps, path.split('/'), query);
  if (handlers === undefined) return undefined;
  const methods = Object.keys(handlers);
  // HEAD runs GET's handler and is audited as GET: the README promises it on every route with GET.
  const chosen = handlers[handlerMethod(method)];
  // A method the path does not allow: the app answers 405 before `run` or `event` matter; were
  // `run` ever reached, it refuses the same way (JSON, Allow) rather than with a bare status.
  return { event: chosen?.[0], methods, run: chosen?.[1] ?? (async () => Promise.reject(methodNotAllowed(methods))) };
}

function match(deps: HandlerDeps, segments: string[], query: string): Record<string, Handler> | undefined {
  if (segments.some((segment, index) => index > 0 && segment === '')) return undefined;
  const [, api, version, area, ...rest] = segments;
  if (api !== 'api' || version !== 'v1') return undefined;
  const [first, second, third, fourth] = rest;
  if (area === 'auth' && first === 'keys' && rest.length === 1) {
    return { GET: ['apikey.list', (x) => listKeys(deps, x, query)], POST: ['apikey.create', (x) => createKey(deps, x, query)] };
  }
  if (area === 'auth' && first === 'keys' && second !== undefined && rest.length === 2) {
    return { GET: ['apikey.list', (x) => showKey(deps, x, query, second)], DELETE: ['apikey.revoke', (x) => revokeKey(deps, x, query, second)] };
  }
  if (area === 'vault' && first === 'tokens' && rest.length === 1) return { GET: ['token.list', (x) => listTokens(deps, x, query)] };
  if (area === 'vault' && first === 'tokens' && second !== undefined && second !== 'generate' && second !== 'revoke' && rest.length === 2) {
    return { DELETE: ['token.revoke', (x) => revokeTokenById(deps, x, query, second)] };
  }
  if (area === 'audit' && rest.length === 0) return { GET: ['audit.read', (x) => readAudit(deps, x, query)] };
  if (area === 'audit' && first === 'chart' && rest.length === 1) return { GET: ['audit.read', (x) => readChart(deps, x, query)] };
  if (area === 'admin' && first === 'status' && rest.length === 1) return { GET: ['status.read', (x) => readStatus(deps, x, query)] };
  if (area !== 'admin' || first !== 'environments') return undefined;
  if (rest.length === 1) return { GET: ['environment.list', (x) => listEnvironmentSummaries(deps, x, query)] };
  if (second !== undefined && third === 'secrets' && rest.length === 3) return { GET: ['environment.list', (x) => listNames(deps, x, query, second)] };
  if (second !== undefined && third === 'secrets' && fourth !== undefined && rest.length === 4) {
    return { PUT: ['secret.set', (x) => setSecret(deps, x, query, second, fourth)], DELETE: ['secret.delete', (x) => deleteSecret(deps, x, query, second, fourth)] };
  }
  return undefined;
}
