// One JSON line per request that touches a credential or a secret. Only these fields, in this
// order: never a value, a token or an API key (names and ids only).

export type AuditEventName = 'token.generate' | 'secret.read' | 'secret.list' | 'secret.batch' | 'token.revoke' | 'auth.failure';

export interface AuditRecord {
  event: AuditEventName;
  outcome: 'success' | 'failure';
  status: number;
  error_code: string | null;
  api_key_id: string | null;
  jti: string | null;
  subject: string | null;
  environment: string | null;
  keys: readonly string[] | null;
  client: string;
}

export function auditLine(record: AuditRecord, now: Date): string {
  const { event, outcome, status, error_code, api_key_id, jti, subject, environment, keys, client } = record;
  return JSON.stringify({ time: now.toISOString(), event, outcome, status, error_code, api_key_id, jti, subject, environment, keys, client });
}
