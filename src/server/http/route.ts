// What routing hands the app for a request: the audit event it records (none for /healthz), the
// methods the path allows (else 405 with Allow), and the handler for the request's method.
import type { AuditEventName } from '../audit/record.js';
import type { Exchange, Reply } from './handlers.js';

export interface Route {
  /** Credentialed routes have one: they are rate limited and leave exactly one audit row. */
  event: AuditEventName | undefined;
  methods: readonly string[];
  run: (x: Exchange) => Promise<Reply>;
}
