// `GET /api/v1/audit`: the trail, newest first, filtered in SQL and paged by an opaque cursor
// (the `seq` the next page starts below). Reading the trail is itself an `audit.read` row whose
// subject is the query as understood, so a reader's filters are on record too.
import { AUDIT_EVENTS, auditObject, type AuditEventName, type AuditQuery } from '../../audit/record.js';
import { isValidApiKeyId } from '../../auth/api-keys.js';
import { parseIsoTime } from '../../iso-time.js';
import { ENVIRONMENT_GRAMMAR_TEXT, isValidEnvironment } from '../../store/layout.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { badRequest } from '../http-error.js';
import { authenticateAdmin } from './admin-auth.js';
import { readLimit, readQuery } from './query.js';

const MAX_EVENTS = 1000;
const DEFAULT_EVENTS = 100;
const PARAMS = ['api_key_id', 'event', 'outcome', 'environment', 'since', 'until', 'limit', 'cursor'] as const;

export async function readAudit(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  const params = readQuery(query, PARAMS);
  const filter = parseFilter(params);
  x.audit.subject = describeFilter(params);
  // One row more than asked says whether there is a next page without a second query.
  const rows = await deps.state.queryAudit({ ...filter, limit: filter.limit + 1 });
  const page = rows.slice(0, filter.limit);
  const last = page.at(-1);
  const nextCursor = rows.length > filter.limit && last !== undefined ? encodeCursor(last.seq) : null;
  return { status: 200, body: { events: page.map(auditObject), next_cursor: nextCursor } };
}

function parseFilter(params: Map<string, string>): AuditQuery {
  const apiKeyId = params.get('api_key_id');
  if (apiKeyId !== undefined && !isValidApiKeyId(apiKeyId)) throw badRequest('api_key_id is ak_ and 16 hexadecimal digits');
  const event = params.get('event');
  if (event !== undefined && !AUDIT_EVENTS.includes(event as AuditEventName)) throw badRequest(`event must be one of ${AUDIT_EVENTS.join(', ')}`);
  const outcome = params.get('outcome');
  if (outcome !== undefined && outcome !== 'success' && outcome !== 'failure') throw badRequest('outcome must be success or failure');
  const environment = params.get('environment');
  if (environment !== undefined && !isValidEnvironment(environment)) throw badRequest(ENVIRONMENT_GRAMMAR_TEXT);
  const cursor = params.get('cursor');
  return {
    apiKeyId,
    event,
    outcome,
    environment,
    since: time(params.get('since'), 'since'),
    until: time(params.get('until'), 'until'),
    beforeSeq: cursor === undefined ? undefined : decodeCursor(cursor),
    limit: readLimit(params.get('limit'), MAX_EVENTS, DEFAULT_EVENTS),
  };
}

function time(value: string | undefined, name: string): string | undefined {
  if (value === undefined) return undefined;
  const date = parseIsoTime(value);
  // `?since=…T06:00:00+01:00` as typed into curl: a query's + is a space, so the offset is lost.
  if (date === undefined && parseIsoTime(value.replace(' ', '+')) !== undefined) {
    throw badRequest(`${name}: a + in a query string reads as a space; write the offset's + as %2B (2030-01-31T06:00:00%2B01:00)`);
  }
  if (date === undefined) throw badRequest(`${name} must be an ISO 8601 time such as 2030-01-31T00:00:00Z`);
  return date.toISOString();
}

/** The filters as understood, in a fixed order, for the row's subject (only values that passed their checks). */
function describeFilter(params: Map<string, string>): string | null {
  const parts = PARAMS.filter((name) => name !== 'cursor' && params.has(name)).map((name) => `${name}=${params.get(name)}`);
  return parts.length === 0 ? null : parts.join(' ').slice(0, 256);
}

// Opaque to clients (they may only hand it back), so its form can change; today `seq:N` in base64url.
function encodeCursor(seq: number): string {
  return Buffer.from(`seq:${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): number {
  const text = cursor.length <= 32 && /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const match = /^seq:([1-9][0-9]{0,14})$/.exec(text);
  if (match?.[1] === undefined || encodeCursor(Number(match[1])) !== cursor) throw badRequest('cursor is not one this server gave');
  return Number(match[1]);
}
