// `/api/v1/vault/tokens`: the records of issued tokens (never a token: the server keeps none) and
// their revocation by jti. A revocation is the same effect as a token revoking itself, stored with
// an audit row that names the admin key, the jti, and the token's subject and environment.
import { isValidApiKeyId } from '../../auth/api-keys.js';
import { isValidJti } from '../../auth/tokens.js';
import type { TokenView } from '../../state/state-store.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { badRequest, notFound } from '../http-error.js';
import { readJsonBody } from '../request.js';
import { authenticateAdmin } from './admin-auth.js';
import { readBoolean, readLimit, readQuery } from './query.js';
import { DamagedRowError } from '../../state/state-errors.js';

const MAX_TOKENS = 1000;

export async function listTokens(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  const params = readQuery(query, ['api_key_id', 'active', 'limit']);
  const apiKeyId = params.get('api_key_id');
  if (apiKeyId !== undefined && !isValidApiKeyId(apiKeyId)) throw badRequest('api_key_id is ak_ and 16 hexadecimal digits');
  const active = readBoolean(params.get('active'), 'active');
  const limit = readLimit(params.get('limit'), MAX_TOKENS, MAX_TOKENS);
  const tokens = await deps.state.listTokens({ apiKeyId, active, now: x.now, limit });
  return { status: 200, body: { tokens: tokens.map(publicToken) } };
}

export async function revokeTokenById(deps: HandlerDeps, x: Exchange, query: string, jti: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  await readJsonBody(x.req, { optional: true });
  readQuery(query, []);
  if (!isValidJti(jti)) throw badRequest('a jti is 16 to 64 characters of letters, digits, _ and -');
  x.audit.jti = jti;
  // A token whose record is damaged is revoked all the same (it answered 500), its row naming the jti only.
  const token = await deps.state.findToken(jti).catch((error: unknown) => {
    if (error instanceof DamagedRowError) return 'damaged' as const;
    throw error;
  });
  if (token === undefined) throw notFound(`no token ${jti}`);
  // Legacy imports hold no subject or environment: leave the row's fields empty then.
  if (token !== 'damaged') Object.assign(x.audit, { subject: token.subject || null, environment: token.environment || null });
  return { status: 204, body: undefined, effect: { kind: 'revoke', jti } };
}

/** Dates as ISO 8601, like every other date of the API (the records keep epoch seconds). */
function publicToken(t: TokenView): Record<string, unknown> {
  return {
    jti: t.jti,
    api_key_id: t.api_key_id,
    subject: t.subject,
    environment: t.environment,
    key_pattern: t.key_pattern,
    issued_at: new Date(t.issued_at * 1000).toISOString(),
    expires_at: new Date(t.expires_at * 1000).toISOString(),
    uses: t.uses,
    usage_limit: t.usage_limit,
    revoked_at: t.revoked_at,
  };
}
