// `/api/v1/auth/keys`: create (the key is in the 201 answer and nowhere else, ever), list, show
// and revoke API keys. Changes are commit effects: the key row and its audit row (with the admin
// key's id, and the key touched as the row's subject) are stored in one transaction.
import { isValidApiKeyId, newApiKey } from '../../auth/api-keys.js';
import { publicApiKey } from '../../auth/api-key-view.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { badRequest, notFound } from '../http-error.js';
import { readJsonBody } from '../request.js';
import { authenticateAdmin } from './admin-auth.js';
import { parseKeyBody } from './key-body.js';
import { readQuery } from './query.js';
import { DamagedRowError } from '../../state/state-errors.js';

export async function createKey(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  const raw = await readJsonBody(x.req);
  readQuery(query, []);
  const grant = parseKeyBody(raw, x.now);
  const { record, key } = newApiKey(deps.pepper, grant, x.now);
  x.audit.subject = record.id;
  const view = publicApiKey({ ...record, grants_intact: true, last_used_at: null, live_tokens: 0 });
  // RFC 9110 §15.3.2: without Location, a 201 says the resource made is the target, the list.
  return { status: 201, body: { ...view, key }, headers: { location: `/api/v1/auth/keys/${record.id}` }, effect: { kind: 'apikey.create', record } };
}

export async function listKeys(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  readQuery(query, []);
  const keys = await deps.state.listApiKeys(x.now);
  return { status: 200, body: { keys: keys.map(publicApiKey) } };
}

export async function showKey(deps: HandlerDeps, x: Exchange, query: string, id: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  readQuery(query, []);
  x.audit.subject = checkKeyId(id);
  const key = await deps.state.getApiKey(id, x.now);
  if (key === undefined) throw notFound(`no API key ${id}`);
  return { status: 200, body: publicApiKey(key) };
}

export async function revokeKey(deps: HandlerDeps, x: Exchange, query: string, id: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  await readJsonBody(x.req, { optional: true });
  readQuery(query, []);
  x.audit.subject = checkKeyId(id);
  // A key whose row is damaged is revoked all the same (it answered 500): revoking it is what an
  // operator does about it, and the revocation needs only its id.
  const found = await deps.state.getApiKey(id, x.now).then(
    (key) => key !== undefined,
    (error: unknown) => {
      if (error instanceof DamagedRowError) return true;
      throw error;
    },
  );
  if (!found) throw notFound(`no API key ${id}`);
  // Idempotent like the CLI: revoking again keeps the first time and answers 204.
  return { status: 204, body: undefined, effect: { kind: 'apikey.revoke', id } };
}

function checkKeyId(id: string): string {
  if (!isValidApiKeyId(id)) throw badRequest('an API key id is ak_ and 16 hexadecimal digits');
  return id;
}
