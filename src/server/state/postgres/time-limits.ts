// The server's own time limits on PostgreSQL, which make "the database does not answer → 503
// RWS_STATE_UNAVAILABLE within the request timeout" true, and keeping a database URL from
// lifting them. node-postgres lets every query parameter of the URL override the config object
// it came with (`?statement_timeout=0` disables the statement timeout, `?query_timeout=0` the
// client's read timeout): a URL copied from another tool's config would leave a request waiting
// on a lock for as long as the lock is held. So those parameters are taken out of the URL before
// node-postgres reads it, and the commands say once which ones were ignored. No `pg` here: a
// command checks the URL before the driver is loaded.
import { withoutPairs } from './url-query.js';

export const CONNECT_TIMEOUT_MS = 3_000;
export const QUERY_TIMEOUT_MS = 5_000;

/** Query parameters node-postgres (or libpq, for `connect_timeout`) reads as a time limit. */
const LIMIT_PARAMETERS: ReadonlySet<string> = new Set(['statement_timeout', 'query_timeout', 'connect_timeout', 'idle_in_transaction_session_timeout']);

/**
 * A setting in `options` (`-c name=value`, `-cname=value` or `--name=value`; PostgreSQL reads `-`
 * in a name as `_` and names case-blind) of a limit the server sends in its own startup
 * parameters. PostgreSQL applies those after `options`, so the server's value holds anyway
 * (tested); only the operator is told.
 */
const OPTIONS_LIMIT = /(?:^|\s)(?:-c\s*|--)(statement[-_]timeout|idle[-_]in[-_]transaction[-_]session[-_]timeout)\s*=/gi;

/**
 * `url` without the query parameters that would lift the server's time limits, and the names of
 * what was ignored (each once, in the URL's order; `options (-c statement_timeout)` for a
 * setting in `options`, which stays in the URL for its other settings). Names only, from the
 * lists above: never a value or any other part of the URL.
 */
export function withoutUrlLimits(url: string): { url: string; ignored: string[] } {
  const ignored = new Set<string>();
  const kept = withoutPairs(url, ({ name, value }) => {
    if (LIMIT_PARAMETERS.has(name)) {
      ignored.add(name);
      return true;
    }
    if (name === 'options') for (const setting of optionsLimits(value)) ignored.add(`options (-c ${setting})`);
    return false;
  });
  return { url: kept, ignored: [...ignored] };
}

/** The limits the server sends in its startup parameters that `options` also sets, by name. */
function optionsLimits(options: string): string[] {
  return [...options.matchAll(OPTIONS_LIMIT)].map((match) => (match[1] as string).toLowerCase().replace(/-/g, '_'));
}

/**
 * The environment variables node-postgres reads (pg 8, connection-parameters.js and index.js) that
 * would set or drop one of our limits, named as the URL's are. NODE_PG_FORCE_NATIVE would, and
 * is taken out of the environment (server/cli.ts main). The others do not lift one: PGCONNECT_TIMEOUT
 * is read only when no connect timeout is given (ours always is, and the JavaScript client never
 * uses it), and PGOPTIONS, read only when the URL has no `options`, is applied by PostgreSQL
 * before the startup parameters that carry our limits. The operator, who may believe otherwise,
 * is told. Set but empty, node-postgres reads neither.
 */
export function envLimits(url: string, env: Readonly<Record<string, string | undefined>>): string[] {
  const ignored = new Set<string>();
  if (env.PGCONNECT_TIMEOUT) ignored.add('PGCONNECT_TIMEOUT');
  // Its libpq client would be sent no statement limit at all; the server's main takes it out.
  if (env.NODE_PG_FORCE_NATIVE) ignored.add('NODE_PG_FORCE_NATIVE');
  let urlOptions = '';
  withoutPairs(url, ({ name, value }) => {
    if (name === 'options') urlOptions = value;
    return false;
  });
  if (env.PGOPTIONS && urlOptions === '') for (const setting of optionsLimits(env.PGOPTIONS)) ignored.add(`PGOPTIONS (-c ${setting})`);
  return [...ignored];
}

/**
 * The warning a command prints once when the URL or the environment tried to set the server's
 * limits, or undefined.
 */
export function ignoredLimitsWarning(url: string, env: Readonly<Record<string, string | undefined>> = {}): string | undefined {
  const fromUrl = withoutUrlLimits(url).ignored;
  const fromEnv = envLimits(url, env);
  const count = fromUrl.length + fromEnv.length;
  if (count === 0) return undefined;
  const what = [fromUrl.length > 0 ? `the database URL's ${fromUrl.join(', ')}` : '', fromEnv.length > 0 ? `the environment's ${fromEnv.join(', ')}` : ''].filter((part) => part !== '').join(' and ');
  const where = [fromUrl.length > 0 ? 'the URL' : '', fromEnv.length > 0 ? 'the environment' : ''].filter((part) => part !== '').join(' and ');
  return `secrets-server: warning RWS_DATABASE_TIMEOUT_IGNORED: ${what} ${count === 1 ? 'is' : 'are'} ignored: the server's own limits hold (connect ${CONNECT_TIMEOUT_MS / 1000} s, each statement ${QUERY_TIMEOUT_MS / 1000} s, a transaction left idle ${QUERY_TIMEOUT_MS / 1000} s), so that a database that does not answer is a 503 within the request timeout; remove ${count === 1 ? 'it' : 'them'} from ${where}`;
}
