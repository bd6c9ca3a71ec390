// Query strings of the admin routes, read strictly: every parameter known, none repeated, none
// empty. A parameter the server ignored would let a client believe a filter was applied.
import { badRequest } from '../http-error.js';

const MAX_QUERY_LENGTH = 2048;

export function readQuery(query: string, allowed: readonly string[]): Map<string, string> {
  // Most requests carry none, every secret read among them: no parser for those.
  if (query === '') return new Map();
  if (query.length > MAX_QUERY_LENGTH) throw badRequest(`the query string is limited to ${MAX_QUERY_LENGTH} characters`);
  // URLSearchParams skips empty segments (`?&&`, `?a=1&`): refused like an empty parameter, as a
  // client sending them has a bug. A bare `?` is no query at all and stays accepted.
  if (query !== '' && query.split('&').includes('')) throw badRequest('the query string has an empty parameter (a stray &)');
  const params = new URLSearchParams(query);
  const values = new Map<string, string>();
  for (const [name, value] of params) {
    if (!allowed.includes(name)) {
      throw badRequest(allowed.length === 0 ? 'this route takes no query parameters' : `unexpected query parameter ${JSON.stringify(name.slice(0, 64))}; expected only ${allowed.join(', ')}`);
    }
    if (values.has(name)) throw badRequest(`query parameter ${name} is given more than once`);
    if (value === '') throw badRequest(`query parameter ${name} is empty`);
    values.set(name, value);
  }
  return values;
}

/** `true` or `false`, nothing else. */
export function readBoolean(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false') throw badRequest(`${name} must be true or false`);
  return value === 'true';
}

/** A decimal integer from 1 to `max` (no sign, no exponent, no leading zero). */
export function readLimit(value: string | undefined, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const limit = /^[1-9][0-9]{0,6}$/.test(value) ? Number(value) : Number.NaN;
  if (!(limit >= 1 && limit <= max)) throw badRequest(`limit must be an integer from 1 to ${max}`);
  return limit;
}
