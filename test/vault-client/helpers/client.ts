// Small helpers shared by the vault-client tests: a client with fast defaults, a captured debug
// log, and the checks every error must pass (stable code, exit 125, nothing secret in the text).
import { expect } from 'vitest';
import { VaultClient, type VaultClientOptions, VaultError } from '../../../src/vault-client/index.js';

export interface TestClient {
  client: VaultClient;
  debug: string[];
}

export async function makeClient(baseUrl: string, options: Partial<VaultClientOptions> = {}): Promise<TestClient> {
  const debug: string[] = [];
  const client = await VaultClient.create({ baseUrl, timeoutMs: 2000, retries: 0, insecureHttp: false, debug: (line) => debug.push(line), ...options });
  return { client, debug };
}

/** Awaits a rejection and checks it is a VaultError with `code` that mentions none of `secrets`. */
export async function expectVaultError(promise: Promise<unknown>, code: string, secrets: readonly string[] = []): Promise<VaultError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(VaultError);
  const vaultError = error as VaultError;
  expect(vaultError.code, vaultError.message).toBe(code);
  expect(vaultError.exitCode).toBe(125);
  expect(vaultError.message).not.toContain('\n');
  expect(vaultError.hint ?? '').not.toBe('');
  for (const secret of secrets) expectNotLeaked(vaultError, secret);
  return vaultError;
}

export function expectNotLeaked(error: VaultError, secret: string): void {
  const text = `${error.message} ${error.hint ?? ''} ${String(error.serverCode)} ${String(error.cause ?? '')}`;
  expect(text).not.toContain(secret);
}
