// Where things live in the store directory, and which environment names may become file names.

import path from 'node:path';
import { holdsApiKey } from '../../credential-shapes.js';

/** Environment names become file names: no dots, no slashes, nothing hidden. */
const ENVIRONMENT_GRAMMAR = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** `GET /api/v1/vault/tokens/generate` must never be read as a secret named `generate`. */
const RESERVED_ENVIRONMENTS = new Set(['tokens', 'secrets']);
/** The grammar in words, reserved names included: `GET /api/v1/vault/secrets` is no environment either. */
export const ENVIRONMENT_GRAMMAR_TEXT = 'environment must be a name of letters, digits, _ and - (at most 64), other than tokens and secrets (reserved)';

/**
 * An API key pasted as an environment (`secret set $KEY NAME`) is no name: it would be a file
 * name, listed by `status`, the console and the unauthenticated `/healthz`.
 */
export function isValidEnvironment(name: string): boolean {
  return ENVIRONMENT_GRAMMAR.test(name) && !RESERVED_ENVIRONMENTS.has(name) && !holdsApiKey(name);
}

export const SECRETS_SUFFIX = '.enc.yaml';

export interface StorePaths {
  readonly dir: string;
  readonly ageIdentity: string;
  readonly jwtSecret: string;
  readonly pepper: string;
  readonly apiKeys: string;
  readonly stateLog: string;
  readonly auditLog: string;
  readonly stateDb: string;
  /** The newest audit row this host's servers have seen (rollback detection). */
  readonly stateSeen: string;
  secrets(environment: string): string;
}

export function storePaths(dir: string): StorePaths {
  const root = path.resolve(dir);
  return {
    dir: root,
    ageIdentity: path.join(root, 'age-identity.txt'),
    jwtSecret: path.join(root, 'jwt-secret'),
    pepper: path.join(root, 'api-key-pepper'),
    apiKeys: path.join(root, 'api-keys.json'),
    stateLog: path.join(root, 'token-state.log'),
    auditLog: path.join(root, 'audit.log'),
    stateDb: path.join(root, 'state.db'),
    stateSeen: path.join(root, 'state-seen.json'),
    secrets: (environment) => path.join(root, `${environment}${SECRETS_SUFFIX}`),
  };
}
