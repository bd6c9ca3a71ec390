// GET /metrics on the public listener: for an admin key only (a scraper that cannot reach a
// separate `--metrics-listen` address). Read keys get 403 and no credential 401, as on every admin
// route; each scrape is an audit row like any other credentialed request.
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { notFound } from '../http-error.js';
import { authenticateAdmin } from './admin-auth.js';
import { readQuery } from './query.js';

export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export async function readMetrics(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  // An admin route like the others: a parameter it would ignore is a 400, never silently dropped.
  readQuery(query, []);
  if (deps.metrics === undefined) throw notFound('metrics are not collected by this server');
  return { status: 200, body: undefined, text: { body: deps.metrics.render(), contentType: PROMETHEUS_TEXT } };
}
