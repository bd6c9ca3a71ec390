// The console's event filter offers every event the server records: a list of its own (the
// console is browser code, bundled apart) that fell behind left `metrics.read` and
// `secret.offline_use` rows impossible to pick.
import { expect, it } from 'vitest';
import { AUDIT_EVENTS } from '../../src/server/audit/record.js';
import { EVENTS } from '../../web/console/pages/audit.js';

it('offers every audit event the server records, and no other', () => {
  expect([...EVENTS].sort()).toEqual([...AUDIT_EVENTS].sort());
});
