// The route of a request as a fixed label for metrics and the request log: templates only, so a
// label never carries an environment, a secret name or anything else a client put in the path.

const PREFIX = '/api/v1/vault/';
const SECRET = `${PREFIX}{environment}/{key}`;
const ENVIRONMENT = `${PREFIX}{environment}`;
const GENERATE = `${PREFIX}tokens/generate`;
const REVOKE = `${PREFIX}tokens/revoke`;
const BATCH = `${PREFIX}secrets/batch`;
// The admin API's token routes: `tokens` is a reserved name, never an environment (http/app.ts).
const TOKENS = `${PREFIX}tokens`;
const TOKEN = `${PREFIX}tokens/{jti}`;

export function routeLabel(target: string | undefined): string {
  const url = target ?? '/';
  const mark = url.indexOf('?');
  const path = mark === -1 ? url : url.slice(0, mark);
  if (path === '/healthz' || path === '/metrics') return path;
  if (!path.startsWith(PREFIX)) return 'other';
  // The segments after the prefix, found by position: this runs for every request.
  const slash = path.indexOf('/', PREFIX.length);
  if (slash === -1) return path === TOKENS ? TOKENS : path.length > PREFIX.length ? ENVIRONMENT : 'other';
  if (slash === PREFIX.length || slash === path.length - 1 || path.indexOf('/', slash + 1) !== -1) return 'other';
  const first = path.slice(PREFIX.length, slash);
  const second = path.slice(slash + 1);
  if (first === 'tokens' && second === 'generate') return GENERATE;
  if (first === 'tokens' && second === 'revoke') return REVOKE;
  if (first === 'tokens') return TOKEN;
  if (first === 'secrets' && second === 'batch') return BATCH;
  return SECRET;
}
