// `/api/v1/admin/environments…`: environments and their names, and write-only edits of one
// secret. A value goes into the file and nowhere else: not into an answer, the audit row (names
// only) or a log line. The edit's audit row is committed before the new file replaces the old.
import { NameRefusedError } from '../../../errors.js';
import { assertInjectableName } from '../../../names.js';
import { SecretMissingError, type SecretChange } from '../../store/secret-edit.js';
import { UnprotectedValueError } from '../../store/unprotected-values.js';
import type { Exchange, HandlerDeps, Reply } from '../handlers.js';
import { checkEnvironment, checkFields, checkName } from '../bodies.js';
import { badRequest, HttpError, notFound } from '../http-error.js';
import { readJsonBody } from '../request.js';
import { authenticateAdmin } from './admin-auth.js';
import { readQuery } from './query.js';
import type { SecretsAdmin } from '../../store/secrets-admin.js';

export async function listEnvironmentSummaries(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  readQuery(query, []);
  return { status: 200, body: { environments: await secretsAdmin(deps).environments() } };
}

export async function listNames(deps: HandlerDeps, x: Exchange, query: string, envParam: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  readQuery(query, []);
  const environment = checkEnvironment(envParam);
  x.audit.environment = environment;
  const names = await secretsAdmin(deps).names(environment);
  if (names === undefined) throw notFound(`no environment ${environment}`);
  return { status: 200, body: { environment, names } };
}

export async function setSecret(deps: HandlerDeps, x: Exchange, query: string, envParam: string, nameParam: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  const raw = await readJsonBody(x.req);
  readQuery(query, []);
  const { environment, name } = target(x, envParam, nameParam);
  checkFields(raw, ['value']);
  const { value } = raw;
  if (typeof value !== 'string' || value === '' || value.includes('\0')) throw badRequest('value must be a non-empty string without NUL characters');
  return edit(deps, environment, { set: { [name]: value } });
}

export async function deleteSecret(deps: HandlerDeps, x: Exchange, query: string, envParam: string, nameParam: string): Promise<Reply> {
  await authenticateAdmin(deps, x);
  await readJsonBody(x.req, { optional: true });
  readQuery(query, []);
  const { environment, name } = target(x, envParam, nameParam);
  const names = await secretsAdmin(deps).names(environment);
  if (names === undefined) throw notFound(`no environment ${environment}`);
  if (!names.includes(name)) throw notFound(`environment ${environment} has no secret ${name}`);
  return edit(deps, environment, { remove: [name] });
}

/** The environment and the secret's name, checked, and on the audit row. */
function target(x: Exchange, envParam: string, nameParam: string): { environment: string; name: string } {
  const environment = checkEnvironment(envParam);
  x.audit.environment = environment;
  const name = checkName(nameParam);
  x.audit.keys = [name];
  try {
    // The names the wrapper would refuse to inject (LD_PRELOAD, RWS_*, …) are set from the
    // server's host only, where `secret set --allow-name` says so explicitly.
    assertInjectableName(name, new Set());
  } catch (error) {
    if (error instanceof NameRefusedError) throw new HttpError(400, 'RWS_NAME_INVALID', `${name} is a protected name; set it with secrets-server secret set --allow-name on the server's host`);
    throw error;
  }
  return { environment, name };
}

function edit(deps: HandlerDeps, environment: string, change: SecretChange): Reply {
  return {
    status: 204,
    body: undefined,
    durable: true,
    around: async (commit) => {
      try {
        await secretsAdmin(deps).edit(environment, change, commit);
      } catch (error) {
        // Removed meanwhile by another edit: found under the lock, before anything was recorded.
        if (error instanceof SecretMissingError) throw notFound(error.message);
        // A value the file's sops rule would leave in plain text (or an empty one) is refused,
        // naming the environment: the error's own message holds the file's path on this host.
        if (error instanceof UnprotectedValueError) throw new HttpError(400, 'RWS_BAD_REQUEST', error.publicMessage);
        throw error;
      }
    },
  };
}

function secretsAdmin(deps: HandlerDeps): SecretsAdmin {
  if (deps.secretsAdmin === undefined) throw notFound('this server does not manage its secrets over HTTP');
  return deps.secretsAdmin;
}
