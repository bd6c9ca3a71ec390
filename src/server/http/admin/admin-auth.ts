// Who may use an admin route: a live API key made with --admin, presented as a Bearer credential
// or through a console session (when `serve --console` runs and no Authorization header is sent).
// A read key is known (so its id is in the audit row) but refused with 403 before anything about
// the request is looked at.
import { authenticateApiKey } from '../../auth/api-keys.js';
import type { ApiKeyRecord } from '../../state/state-store.js';
import type { Exchange, HandlerDeps } from '../handlers.js';
import { forbidden } from '../http-error.js';
import { bearerCredential } from '../request.js';

export async function authenticateAdmin(deps: HandlerDeps, x: Exchange): Promise<ApiKeyRecord> {
  const session = x.req.headers.authorization === undefined ? await deps.console?.sessionKey(x) : undefined;
  const apiKey = session ?? (await authenticateApiKey(deps.state, deps.pepper, bearerCredential(x.req), x.now));
  x.audit.api_key_id = apiKey.id;
  x.liveKey = apiKey.id;
  if (!apiKey.admin) throw forbidden('this route needs an admin API key (secrets-server apikey create --admin)');
  return apiKey;
}
