// What the app tells metrics and the request log about each answer it sends: the audit event
// (if the route has one), the status, the body (for its error code only) and what the audit line
// learnt (for the API key id only). Observers must never copy a value, a token or a key.
import type { IncomingMessage } from 'node:http';
import type { AuditEventName, AuditRecord } from '../../audit/record.js';

export interface ExchangeOutcome {
  event: AuditEventName | undefined;
  status: number;
  body: unknown;
  seen: Partial<AuditRecord>;
}

export type ExchangeObserver = (req: IncomingMessage, outcome: ExchangeOutcome) => void;

/** The stable error code of an answer's body, or null for a success. */
export function errorCodeOf(body: unknown): string | null {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === 'string' ? code : null;
}
