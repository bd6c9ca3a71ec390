// Routing, the 401 rate limit, audit-before-answer and the error boundary. Handlers live in
// handlers.ts; this file decides which runs and makes sure every credentialed request leaves
// exactly one audit line, written before the answer is sent (or the answer becomes a 503).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { auditLine, type AuditEventName, type AuditRecord } from '../audit/record.js';
import { batchSecrets, type Exchange, generateToken, type HandlerDeps, listSecrets, readSecret, type Reply, revokeToken } from './handlers.js';
import { errorResponse, HttpError, notFound } from './http-error.js';
import { AuthLimits } from './auth-limits.js';
import { gateAuthentication } from './credential-check.js';
import { allowHeader, allowsMethod } from './methods.js';
import type { ExchangeObserver } from './exchange-observer.js';
import { sendJson } from './request.js';

export interface AppDeps extends HandlerDeps {
  limits?: AuthLimits;
  /** Metrics and the request log: told about every answer (names and codes, never values). */
  observe?: ExchangeObserver;
  now?: () => Date;
  /** Operator log: codes and names only. */
  log?: (line: string) => void;
}

interface Route {
  event: AuditEventName | undefined;
  methods: readonly string[];
  run: (x: Exchange) => Promise<Reply>;
}

const PREFIX = '/api/v1/vault/';

function route(deps: HandlerDeps, path: string, query: string): Route | undefined {
  if (path === '/healthz') return { event: undefined, methods: ['GET'], run: async () => ({ status: 200, body: { status: 'ok' } }) };
  if (!path.startsWith(PREFIX)) return undefined;
  const parts = path.slice(PREFIX.length).split('/');
  const [first, second] = parts;
  if (parts.length === 2 && first === 'tokens' && second === 'generate') {
    return { event: 'token.generate', methods: ['POST'], run: (x) => generateToken(deps, x) };
  }
  if (parts.length === 2 && first === 'tokens' && second === 'revoke') {
    return { event: 'token.revoke', methods: ['POST'], run: (x) => revokeToken(deps, x) };
  }
  if (parts.length === 2 && first === 'secrets' && second === 'batch') {
    return { event: 'secret.batch', methods: ['POST'], run: (x) => batchSecrets(deps, x) };
  }
  if (parts.length === 2 && first && second) return { event: 'secret.read', methods: ['GET'], run: (x) => readSecret(deps, x, first, second) };
  if (parts.length === 1 && first) {
    return { event: 'secret.list', methods: ['GET'], run: (x) => listSecrets(deps, x, first, listPattern(query)) };
  }
  return undefined;
}

function listPattern(query: string): string | undefined {
  const params = new URLSearchParams(query);
  const names = [...params.keys()];
  if (names.some((name) => name !== 'pattern') || names.length > 1) throw new HttpError(400, 'RWS_BAD_REQUEST', 'the only query parameter is pattern, given once');
  return params.get('pattern') ?? undefined;
}

/** Path and query of the request target, as sent: no dot-segment or percent decoding (names never need it). */
function splitTarget(target: string): [string, string] {
  const mark = target.indexOf('?');
  return mark === -1 ? [target, ''] : [target.slice(0, mark), target.slice(mark + 1)];
}

export function createApp(deps: AppDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const limits = deps.limits ?? new AuthLimits();
  const now = deps.now ?? (() => new Date());
  const log = deps.log ?? (() => undefined);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const x: Exchange = { req, now: now(), audit: {} };
    const client = req.socket.remoteAddress ?? 'unknown';
    let event: AuditEventName | undefined;
    let reply: Reply & { headers?: Record<string, string> };
    try {
      const found = route(deps, ...splitTarget(req.url ?? '/'));
      if (found === undefined) throw notFound('no such route');
      if (!allowsMethod(found.methods, req.method)) {
        throw new HttpError(405, 'RWS_METHOD_NOT_ALLOWED', `use ${allowHeader(found.methods)}`, { allow: allowHeader(found.methods) });
      }
      event = found.event;
      if (event !== undefined) await gateAuthentication(limits, deps, req, client, x.now);
      reply = await found.run(x);
    } catch (error) {
      if (!(error instanceof HttpError)) log(`secrets-server: ${describe(error)}`);
      reply = errorResponse(error);
      if (reply.status === 401) limits.recordFailure(client, x.now.getTime());
    }
    if (event !== undefined) {
      try {
        await deps.state.appendAudit(auditLine(auditRecord(event, x.audit, reply, client), x.now));
      } catch (error) {
        log(`secrets-server: ${describe(error)}`);
        reply = errorResponse(new HttpError(503, 'RWS_AUDIT_UNAVAILABLE', 'the audit log could not be written; nothing was served'));
      }
    }
    deps.observe?.(req, { event, status: reply.status, body: reply.body, seen: x.audit });
    sendJson(res, reply.status, reply.body, reply.headers);
  }

  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      log(`secrets-server: ${describe(error)}`);
      if (!res.headersSent) sendJson(res, 500, errorResponse(error).body);
      else res.destroy();
    });
  };
}

function auditRecord(event: AuditEventName, seen: Partial<AuditRecord>, reply: { status: number; body: unknown }, client: string): AuditRecord {
  const failed = reply.status >= 400;
  const code = failed ? ((reply.body as { error?: { code?: string } }).error?.code ?? null) : null;
  return {
    event: reply.status === 401 ? 'auth.failure' : event,
    outcome: failed ? 'failure' : 'success',
    status: reply.status,
    error_code: code,
    api_key_id: seen.api_key_id ?? null,
    jti: seen.jti ?? null,
    subject: seen.subject ?? null,
    environment: seen.environment ?? null,
    keys: seen.keys ?? null,
    client,
  };
}

/** Names and codes only: an unknown error's message might hold data. */
function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${error.name}${typeof code === 'string' ? ` ${code}` : ''}`;
  }
  return 'non-error thrown';
}
