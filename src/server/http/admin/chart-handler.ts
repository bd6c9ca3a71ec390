// `GET /api/v1/audit/chart?window=hour|day`: requests per minute, success against failure, for
// the console's audit page. Counted by the database (GROUP BY over the time index), so the answer
// stays small however busy the server: at most 60 buckets of a minute, or 144 of ten minutes.
// It reads the trail, so it is an `audit.read` row like any other read of it.
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { badRequest } from '../http-error.js';
import { authenticateAdmin } from './admin-auth.js';
import { readQuery } from './query.js';

const WINDOWS = { hour: { minutes: 60, bucket: 1 }, day: { minutes: 1440, bucket: 10 } } as const;

export async function readChart(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  const params = readQuery(query, ['window']);
  const window = params.get('window') ?? 'hour';
  if (window !== 'hour' && window !== 'day') throw badRequest('window must be hour or day');
  x.audit.subject = `chart window=${window}`;
  const { minutes, bucket } = WINDOWS[window];
  // Whole buckets: the oldest one starts on its boundary, so every bar covers its full time.
  const bucketMs = bucket * 60_000;
  const until = Math.ceil((x.now.getTime() + 1) / bucketMs) * bucketMs;
  const since = new Date(until - minutes * 60_000).toISOString();
  const end = new Date(until).toISOString();
  // Counted within the window only: a row stamped ahead (a replica whose clock runs fast) or with a
  // time that is no time (edited by hand, `zzzz`) made a bar after its end. One edited into the
  // window's range but still no time (`2030-01-01T12:0x`) is left out here.
  const buckets = (await deps.state.auditBuckets(since, end, bucket)).buckets.filter((b) => !Number.isNaN(Date.parse(b.start)));
  return { status: 200, body: { window, bucket_minutes: bucket, since, until: end, buckets } };
}
