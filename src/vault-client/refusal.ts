// What a secrets-server's 403 or 404 message says about the fix, in fields the client may repeat:
// what the API key grants, and whether the environment or the key is missing. The message is a
// sentence of our own server (src/server/handlers.ts); only names that match the strict grammar
// of environment names, patterns and variable names are taken from it, so nothing else the
// body holds can reach an error line.

export type Refusal =
  | { kind: 'grants'; environments: string[]; patterns: string[] }
  | { kind: 'no-environment'; environment: string }
  | { kind: 'no-key'; environment: string; key: string }
  | { kind: 'no-route' };

const ENVIRONMENT = '[A-Za-z0-9][A-Za-z0-9_-]{0,63}';
const PATTERN = '[A-Za-z0-9_*?]{1,256}';
const NAME = '[A-Za-z_][A-Za-z0-9_]{0,127}';
const list = (item: string): string => `(${item}(?:, ${item}){0,63})`;

const GRANTS = new RegExp(`; it grants environments ${list(ENVIRONMENT)} with key patterns ${list(PATTERN)}$`);
const NO_ENVIRONMENT = new RegExp(`^no environment (${ENVIRONMENT})$`);
const NO_KEY = new RegExp(`^environment (${ENVIRONMENT}) has no secret (${NAME})$`);

export function parseRefusal(status: number, message: unknown): Refusal | undefined {
  if (typeof message !== 'string' || message.length > 20_000) return undefined;
  if (status === 403) {
    const grants = GRANTS.exec(message);
    return grants ? { kind: 'grants', environments: grants[1]!.split(', '), patterns: grants[2]!.split(', ') } : undefined;
  }
  if (status === 404) {
    // The server's answer to a path it does not serve: the vault URL is not its address (a path
    // too many, such as /api), not a missing environment.
    if (message === 'no such route') return { kind: 'no-route' };
    const environment = NO_ENVIRONMENT.exec(message);
    if (environment) return { kind: 'no-environment', environment: environment[1]! };
    const key = NO_KEY.exec(message);
    if (key) return { kind: 'no-key', environment: key[1]!, key: key[2]! };
  }
  return undefined;
}
