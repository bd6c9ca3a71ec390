// The query of `POST /api/v1/vault/secrets/batch`: `wait=SECONDS` only, given at most once, a
// plain decimal from 0 to 60. Anything else is a 400 rather than clamped or ignored: a client that
// asks for 600 s, -1 or `abc` has a bug it should hear about, and would otherwise spin (a wait
// taken as 0) or hang longer than it planned (a proxy's timeout).
import { badRequest } from '../http-error.js';

export const MAX_WAIT_SECONDS = 60;

/** The seconds to hold the request; 0 when not asked to wait. */
export function batchWait(query: string): number {
  if (query === '') return 0;
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(query);
  } catch {
    throw badRequest('the query is not valid');
  }
  const names = [...params.keys()];
  if (names.some((name) => name !== 'wait') || names.length > 1) throw badRequest('the only query parameter is wait, given once');
  const value = params.get('wait') ?? '';
  if (!/^(0|[1-9][0-9]?)$/.test(value) || Number(value) > MAX_WAIT_SECONDS) {
    throw badRequest(`wait must be a whole number of seconds from 0 to ${MAX_WAIT_SECONDS}`);
  }
  return Number(value);
}
