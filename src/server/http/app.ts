// Routing, the 401 rate limit, audit-before-answer and the error boundary. Handlers live in
// handlers.ts (the read API) and admin/ (the admin API, with its own routing); this file decides which runs and makes sure every credentialed request leaves
// exactly one audit row, committed with the request's effect before the answer is sent (or the
// answer becomes a 503 and nothing was charged). Rate-limited refusals are folded into one row
// per client (an IPv4 address or an IPv6 /64, or a wider prefix for a holder of many) and minute,
// so a flood cannot fill the disk.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AuditEventName, AuditRecord } from '../audit/record.js';
import type { RefusalFolder } from '../audit/refusal-folder.js';
import { boundRefusedNames } from '../audit/refused-names.js';
import type { TokenOutcome } from '../state/state-store.js';
import { AuditSinkError, CommitUnknownError, DamagedRowError, explainMissingSchema, type StateUnavailableError } from '../state/state-errors.js';
import { OutageLog } from '../state/outage-log.js';
import { describeApiKey, type Exchange, generateToken, type HandlerDeps, listSecrets, readSecret, type Reply, revokeToken, tokenRefusal } from './handlers.js';
import { errorResponse, HttpError, notFound, RETRY_SOON } from './http-error.js';
import { AuthLimits } from './limits/auth-limits.js';
import { limitKey } from './limits/client-address.js';
import { gateAuthentication } from './limits/credential-check.js';
import { allowsMethod, methodNotAllowed } from './methods.js';
import type { ExchangeObserver } from './observe/exchange-observer.js';
import { bodyPending, sendJson, sendText } from './request.js';
import { readMetrics } from './admin/metrics-handler.js';
import { adminRoute } from './admin/routes.js';
import { reportOfflineUse } from './batch/fallback.js';
import { batchSecrets } from './batch/batch.js';
import type { Route } from './route.js';
import { wasLogged } from '../logged-errors.js';
import { nameAndCode } from '../error-name.js';

export interface AppDeps extends HandlerDeps {
  limits?: AuthLimits;
  /** Where 429s are counted instead of one audit row each. */
  refusals?: RefusalFolder;
  /** Metrics and the request log: told about every answer (names and codes, never values). */
  observe?: ExchangeObserver;
  now?: () => Date;
  /** Operator log: codes and names only. */
  log?: (line: string) => void;
  /**
   * Where refusals for want of the state database are told (shared with the rollback guard), and
   * what `/healthz` reads: required, so that the two can never be two logs.
   */
  outage: OutageLog;
  /** Where refusals for want of the `--audit-log` file are told (shared with the 429 folder); read by `/healthz` too. */
  auditOutage: OutageLog;
}

/** What one request met of the state: told to the outage log once, when its answer is done. */
interface StateSeen {
  unavailable?: StateUnavailableError;
  sinkFailed?: AuditSinkError;
  committed: boolean;
}

const PREFIX = '/api/v1/vault/';

function route(deps: AppDeps, method: string, path: string, query: string): Route | undefined {
  if (path === '/healthz') return { event: undefined, methods: ['GET'], run: () => health(deps) };
  if (path === '/metrics') return { event: 'metrics.read', methods: ['GET'], run: (x) => readMetrics(deps, x, query) };
  // `run-with-secrets login` checks a key here before storing it: audited, rate-limited like a mint.
  if (path === '/api/v1/auth/self') return { event: 'auth.self', methods: ['GET'], run: (x) => describeApiKey(deps, x, query) };
  if (path.startsWith('/console/')) return deps.console?.route(method, path);
  if (path === '/api/v1/fallback/uses') return { event: 'secret.offline_use', methods: ['POST'], run: (x) => reportOfflineUse(deps, x, query) };
  // Admin routes next: `/api/v1/vault/tokens` and `tokens/{jti}` are theirs, never an environment.
  // Every other path under the prefix is the read API's, so a read skips the admin table.
  const vault = path.startsWith(PREFIX);
  const parts = vault ? path.slice(PREFIX.length).split('/') : [];
  const [first, second] = parts;
  if (!vault || first === 'tokens') {
    const admin = adminRoute(deps, method, path, query);
    if (admin !== undefined) return admin;
  }
  if (!vault) return undefined;
  if (parts.length === 2 && first === 'tokens' && second === 'generate') {
    return { event: 'token.generate', methods: ['POST'], run: (x) => generateToken(deps, x, query) };
  }
  if (parts.length === 2 && first === 'tokens' && second === 'revoke') {
    return { event: 'token.revoke', methods: ['POST'], run: (x) => revokeToken(deps, x, query) };
  }
  if (parts.length === 2 && first === 'secrets' && second === 'batch') {
    return { event: 'secret.batch', methods: ['POST'], run: (x) => batchSecrets(deps, x, query) };
  }
  if (parts.length === 2 && first && second) return { event: 'secret.read', methods: ['GET'], run: (x) => readSecret(deps, x, first, second, query) };
  if (parts.length === 1 && first) {
    return { event: 'secret.list', methods: ['GET'], run: (x) => listSecrets(deps, x, first, query) };
  }
  return undefined;
}

/**
 * For load balancers and for drift between replicas: 200 while the state database answers, with
 * the version (file digest) of each environment this process serves; 503 when it does not, or
 * while requests are refused because commits fail (outage-log.ts, `failing`).
 */
async function health(deps: AppDeps): Promise<Reply> {
  const environments = await deps.secrets.versions();
  try {
    const schema = await deps.state.schemaVersion();
    // Every commit appends to the newest audit row: while it is damaged, every credentialed
    // request is refused, and a monitor must not be told this replica is fine.
    await deps.state.auditHead();
    if (deps.outage.failing() || deps.auditOutage.failing()) {
      return { status: 503, body: { status: 'unavailable', state: { kind: deps.state.kind, schema }, environments } };
    }
    return { status: 200, body: { status: 'ok', state: { kind: deps.state.kind, schema }, environments } };
  } catch {
    return { status: 503, body: { status: 'unavailable', state: { kind: deps.state.kind, schema: null }, environments } };
  }
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
  const { outage, auditOutage } = deps;

  /** A database that does not answer, or an audit file that cannot be written, is counted once per request, not logged per error. */
  function report(error: unknown, seen: StateSeen): void {
    if (!counted(error, seen) && !(error instanceof HttpError) && !wasLogged(error)) log(`secrets-server: ${describe(error)}`);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (deps.console?.serveAsset(req, res)) return;
    const x: Exchange = { req, now: now(), audit: {} };
    const client = req.socket.remoteAddress ?? 'unknown';
    let event: AuditEventName | undefined;
    let reply: Reply;
    const seen: StateSeen = { committed: false };
    try {
      const found = route(deps, req.method ?? '', ...splitTarget(req.url ?? '/'));
      if (found === undefined) throw notFound('no such route');
      if (!allowsMethod(found.methods, req.method)) throw methodNotAllowed(found.methods);
      event = found.event;
      if (event !== undefined) {
        const gate = gateAuthentication(limits, deps, req, client, x.now);
        if (gate !== undefined) await gate;
      }
      reply = await found.run(x);
    } catch (error) {
      report(error, seen);
      reply = errorResponse(error);
      if (reply.status === 401 || (event !== undefined && refusedWithoutCredential(reply, x))) limits.recordFailure(client, x.now.getTime());
    }
    if (event !== undefined && reply.status === 429 && deps.refusals) {
      // Folded by the client the limiter counts (an IPv6 /64 as one), and by wider prefixes beyond
      // that (refusal-folder.ts): one row per address of a /64, or per /64 of a /48, would let a
      // flood fill the disk after all.
      deps.refusals.note(limitKey(client), x.now);
    } else if (event !== undefined && !(reply.unaudited && x.audit.api_key_id === undefined)) {
      reply = await record(event, x, reply, client, seen);
    }
    if (seen.unavailable !== undefined) outage.refused(seen.unavailable);
    else if (seen.committed) outage.answered();
    if (seen.sinkFailed !== undefined) auditOutage.refused(seen.sinkFailed);
    else if (seen.committed) auditOutage.answered();
    deps.observe?.(req, { event, status: reply.status, body: reply.body, seen: x.audit });
    // Refused before its body was read (the credential comes first): the rest of the body is
    // not read, so the connection ends with the answer rather than being kept for another request.
    const headers = bodyPending(req) ? { ...reply.headers, connection: 'close' } : reply.headers;
    if (reply.text !== undefined) sendText(res, reply.status, reply.text, headers);
    else sendJson(res, reply.status, reply.body, headers);
  }

  /**
   * Commits the request's audit row with its effect and returns the answer that stands. A reply
   * with `around` (an edit of a secrets file) runs the commit inside its own step: a refusal it
   * finds before the commit is recorded as the answer; a failure after it is a 500.
   */
  async function record(event: AuditEventName, x: Exchange, first: Reply, client: string, seen: StateSeen): Promise<Reply> {
    let reply = first;
    // Where the commit got to when something failed (assigned inside `commit`, read after it).
    let stage = 'before' as 'before' | 'committing' | 'committed';
    const commit = async (): Promise<void> => {
      stage = 'committing';
      const answer = reply;
      const { effect } = answer;
      await deps.state.commit(
        {
          effect,
          durable: answer.durable,
          liveKey: x.liveKey,
          // Called once per attempt of the transaction: the answer follows the last outcome.
          audit: (outcome: TokenOutcome, apiKeyId?: string | null) => {
            // A read that left its token's check to this commit learns the issuing key here.
            if (apiKeyId !== undefined && x.audit.api_key_id === undefined) x.audit.api_key_id = apiKeyId;
            // A use the state could not charge (spent or revoked meanwhile) is a refusal.
            const refusal = tokenRefusal(outcome);
            reply = refusal ? errorResponse(refusal) : answer;
            const seen = refusal || answer.auditOnSuccess === undefined ? x.audit : { ...x.audit, ...answer.auditOnSuccess };
            return auditRecord(event, seen, reply, client, x.now);
          },
        },
        x.now,
      );
      stage = 'committed';
      seen.committed = true;
      if (effect !== undefined && refusedWithoutCredential(reply, x)) limits.recordFailure(client, x.now.getTime());
      // Refused by the commit itself (the requesting key revoked meanwhile): the change made
      // around it (a secrets file) must not happen either.
      if (first.around !== undefined && reply.status >= 400) throw new RefusedAtCommit();
    };
    try {
      await (first.around ? first.around(commit) : commit());
      return reply;
    } catch (error) {
      if (error instanceof RefusedAtCommit) return reply;
      if (stage === 'before' && !isUnavailable(error)) {
        report(error, seen);
        reply = errorResponse(error);
        return record(event, x, reply, client, seen);
      }
      if (!counted(error, seen)) log(`secrets-server: ${describe(error)}`);
      if (stage === 'committed') return errorResponse(new HttpError(500, 'RWS_INTERNAL', 'the change was recorded but could not be completed'));
      if (error instanceof CommitUnknownError) return errorResponse(new HttpError(503, 'RWS_STATE_UNAVAILABLE', 'the state database did not confirm the request; nothing was served, though it may yet be recorded', RETRY_SOON));
      return errorResponse((error as { code?: unknown }).code === 'RWS_AUDIT_UNAVAILABLE' ? error : new HttpError(503, 'RWS_STATE_UNAVAILABLE', 'the request could not be recorded; nothing was served', RETRY_SOON));
    }
  }

  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      log(`secrets-server: ${describe(error)}`);
      if (!res.headersSent) sendJson(res, 500, errorResponse(error).body);
      else res.destroy();
    });
  };
}

/** Whether `error` is an outage's (told by its log when the answer is done) rather than this request's own. */
function counted(error: unknown, seen: StateSeen): boolean {
  if (OutageLog.covers(error)) seen.unavailable ??= error;
  else if (error instanceof AuditSinkError) seen.sinkFailed ??= error;
  else return false;
  return true;
}

/** Unwinds a change made around a commit that turned into a refusal; its answer stands. */
class RefusedAtCommit extends Error {}

// The reads of one event-loop turn mostly share a millisecond: its text is made once. An invalid
// date never matches (NaN) and throws from toISOString as before.
let lastTime = { ms: Number.NaN, text: '' };
function isoTime(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastTime.ms) lastTime = { ms, text: date.toISOString() };
  return lastTime.text;
}

function auditRecord(event: AuditEventName, seen: Partial<AuditRecord>, reply: { status: number; body: unknown }, client: string, now: Date): AuditRecord {
  const failed = reply.status >= 400;
  const code = failed ? ((reply.body as { error?: { code?: string } }).error?.code ?? null) : null;
  return {
    time: isoTime(now),
    event: reply.status === 401 ? 'auth.failure' : event,
    outcome: failed ? 'failure' : 'success',
    status: reply.status,
    error_code: code,
    api_key_id: seen.api_key_id ?? null,
    jti: seen.jti ?? null,
    subject: seen.subject ?? null,
    environment: seen.environment ?? null,
    keys: failed ? boundRefusedNames(seen.keys ?? null) : (seen.keys ?? null),
    client,
    count: 1,
  };
}

/**
 * What counts toward an address's 429 on an audited route: every 401, and any other refusal of a
 * request that showed no valid credential (a console sign-in from another origin), so that no
 * audit row anyone can cause without a credential escapes the limit and its folding.
 */
function refusedWithoutCredential(reply: Reply, x: Exchange): boolean {
  if (reply.status === 401) return true;
  const refused = reply.status >= 400 && reply.status < 500 && reply.status !== 429;
  return refused && x.audit.api_key_id === undefined && x.audit.jti === undefined;
}

function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'RWS_STATE_UNAVAILABLE' || code === 'RWS_AUDIT_UNAVAILABLE';
}

/** Names and codes only: an unknown error's message might hold data. */
function describe(error: unknown): string {
  // Ours names a table, a row and a column, never a value: what the operator needs to fix the row.
  if (error instanceof DamagedRowError) return `error ${error.code}: ${error.message}`;
  const schema = explainMissingSchema(error);
  if (schema !== undefined) return `error ${schema.code}: ${schema.message}`;
  return nameAndCode(error, 'non-error thrown');
}
