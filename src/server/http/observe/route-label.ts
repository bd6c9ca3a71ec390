// The route of a request as a fixed label for metrics and the request log: templates only, so a
// label never carries an environment, a secret name or anything else a client put in the path.

const PREFIX = '/api/v1/vault/';

export function routeLabel(target: string | undefined): string {
  const path = (target ?? '/').split('?', 1)[0] ?? '/';
  if (path === '/healthz' || path === '/metrics') return path;
  if (!path.startsWith(PREFIX)) return 'other';
  const parts = path.slice(PREFIX.length).split('/');
  if (parts.length === 2 && parts[0] === 'tokens' && (parts[1] === 'generate' || parts[1] === 'revoke')) return `${PREFIX}tokens/${parts[1]}`;
  if (parts.length === 2 && parts[0] === 'secrets' && parts[1] === 'batch') return `${PREFIX}secrets/batch`;
  if (parts.length === 2 && parts[0] && parts[1]) return `${PREFIX}{environment}/{key}`;
  if (parts.length === 1 && parts[0]) return `${PREFIX}{environment}`;
  return 'other';
}
