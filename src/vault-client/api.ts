// The typed calls of the vault API (issue 3's pinned paths and shapes). Each call sends one
// request through the Transport, maps a refusal to an error naming what was asked for, and
// validates the answer before returning anything from it.
import { readFile } from 'node:fs/promises';
import { ConfigError, UsageError } from '../errors.js';
import { VaultError } from './errors.js';
import { Transport, type VaultRequest, type VaultResponse } from './http.js';
import { type BatchAnswer, type BatchSelector, type KeyInfo, type MintedToken, type MintRequest, parseBatch, parseKeyInfo, parseKeyList, parseMinted, parseSecret } from './responses.js';
import { type CallContext, statusError, VAULT_URL_HINT } from './status.js';
import { parseVaultUrl } from './url.js';

export interface VaultClientOptions {
  /** e.g. https://vault.example:8200; a path prefix is kept. */
  baseUrl: string;
  /** Each of connect, headers and body. */
  timeoutMs: number;
  /** Extra attempts for connection failures and 502/503/504 only. */
  retries: number;
  /** PEM file of the private CA(s) to trust instead of the public roots. */
  caFile?: string;
  /** Allow http:// to a host that is not loopback. */
  insecureHttp: boolean;
  /** --verbose lines: method, path, status, attempt. Never credentials or values. */
  debug?: (message: string) => void;
  progress?: ((text: string | undefined) => void) | undefined;
}

const API = '/api/v1/vault';
const MAX_CA_FILE_BYTES = 1024 * 1024;
/** What an HTTP header can carry; anything else would be refused (or worse) below us. */
const HEADER_SAFE = /^[\x21-\x7e]+$/;

export class VaultClient {
  private constructor(
    private readonly transport: Transport,
    private readonly origin: string,
    /** The vault URL as given, path prefix included, for the errors a wrong prefix causes. */
    private readonly base: string,
  ) {}

  static async create(options: VaultClientOptions): Promise<VaultClient> {
    if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) throw new UsageError(`Expected the timeout to be a positive number of seconds, got ${options.timeoutMs / 1000}`);
    if (!Number.isSafeInteger(options.retries) || options.retries < 0) throw new UsageError(`Expected --retries to be a non-negative integer, got ${options.retries}`);
    const url = parseVaultUrl(options.baseUrl, options.insecureHttp);
    const ca = options.caFile === undefined ? undefined : await readCaFile(options.caFile);
    const transport = new Transport({ origin: url.origin, prefix: url.prefix, timeoutMs: options.timeoutMs, retries: options.retries, ca, debug: options.debug, progress: options.progress });
    return new VaultClient(transport, url.origin, url.origin + url.prefix);
  }

  async mintToken(apiKey: string, request: MintRequest): Promise<MintedToken> {
    const context: CallContext = { action: 'minting a token', credential: 'API key', environment: request.environment, pattern: request.keyPattern };
    const body = {
      subject: request.subject,
      environment: request.environment,
      key_pattern: request.keyPattern,
      ttl_minutes: request.ttlMinutes,
      ...(request.usageLimit === null ? {} : { usage_limit: request.usageLimit }),
    };
    const response = await this.call({ method: 'POST', path: `${API}/tokens/generate`, credential: apiKey, json: body }, context, [200, 201]);
    return parseMinted(response.body, request, this.origin);
  }

  async fetchBatch(token: string, environment: string, selector: BatchSelector): Promise<Map<string, string>> {
    return (await this.fetchBatchAnswer(token, environment, selector)).secrets;
  }

  /** The batch, with what the vault says of caching it (--fallback). */
  async fetchBatchAnswer(token: string, environment: string, selector: BatchSelector): Promise<BatchAnswer> {
    const context: CallContext = { action: 'fetching secrets', credential: 'token', environment, keys: selector.keys, pattern: selector.pattern };
    const body = { environment, ...(selector.keys === undefined ? {} : { keys: selector.keys }), ...(selector.pattern === undefined ? {} : { pattern: selector.pattern }) };
    const response = await this.call({ method: 'POST', path: `${API}/secrets/batch`, credential: token, json: body }, context, [200]);
    return parseBatch(response.body, environment, selector, this.origin);
  }

  /**
   * The batch for --watch: with the tag of the answer already held, a 304 means "unchanged"; with
   * `waitSeconds` a server that long-polls holds the request until the answer changes. A server
   * without either answers 200 without a tag, and the caller compares the values itself.
   */
  async fetchBatchWatched(token: string, environment: string, selector: BatchSelector, watch: { etag?: string | undefined; waitSeconds?: number | undefined; signal?: AbortSignal | undefined }): Promise<WatchedBatch> {
    const wait = watch.waitSeconds !== undefined && watch.waitSeconds > 0 ? Math.min(60, Math.floor(watch.waitSeconds)) : undefined;
    const context: CallContext = { action: 'refreshing secrets', credential: 'token', environment, keys: selector.keys, pattern: selector.pattern, held: wait !== undefined && watch.etag !== undefined };
    const body = { environment, ...(selector.keys === undefined ? {} : { keys: selector.keys }), ...(selector.pattern === undefined ? {} : { pattern: selector.pattern }) };
    const response = await this.call(
      {
        method: 'POST',
        path: `${API}/secrets/batch${wait === undefined ? '' : `?wait=${wait}`}`,
        credential: token,
        json: body,
        ...(watch.etag === undefined ? {} : { headers: { 'if-none-match': watch.etag } }),
        ...(wait === undefined ? {} : { holdMs: wait * 1000 }),
        ...(watch.signal === undefined ? {} : { signal: watch.signal }),
      },
      context,
      watch.etag === undefined ? [200] : [200, 304],
    );
    if (response.status === 304) return { changed: false, etag: response.etag ?? watch.etag };
    return { changed: true, secrets: parseBatch(response.body, environment, selector, this.origin).secrets, etag: response.etag };
  }

  async fetchKey(token: string, environment: string, key: string): Promise<string> {
    const context: CallContext = { action: 'fetching a secret', credential: 'token', environment, keys: [key] };
    const path = `${API}/${encodeURIComponent(environment)}/${encodeURIComponent(key)}`;
    const response = await this.call({ method: 'GET', path, credential: token }, context, [200]);
    return parseSecret(response.body, environment, key, this.origin);
  }

  async listKeys(token: string, environment: string, pattern?: string): Promise<string[]> {
    const context: CallContext = { action: 'listing keys', credential: 'token', environment, pattern };
    const query = pattern === undefined ? '' : `?pattern=${encodeURIComponent(pattern)}`;
    const response = await this.call({ method: 'GET', path: `${API}/${encodeURIComponent(environment)}${query}`, credential: token }, context, [200]);
    return parseKeyList(response.body, environment, pattern, this.origin);
  }

  /** Tells the vault of one run served from the fallback cache (POST /api/v1/fallback/uses, audited as secret.offline_use). */
  async reportOfflineUse(apiKey: string, use: { subject: string; environment: string; keys: readonly string[]; used_at: string }): Promise<void> {
    const context: CallContext = { action: 'reporting an offline use', credential: 'API key', environment: use.environment };
    await this.call({ method: 'POST', path: '/api/v1/fallback/uses', credential: apiKey, json: use }, context, [204]);
  }

  async revokeToken(token: string): Promise<void> {
    await this.call({ method: 'POST', path: `${API}/tokens/revoke`, credential: token }, { action: 'revoking the token', credential: 'token' }, [200, 204]);
  }

  /** Who the API key is and what it grants (GET /api/v1/auth/self); `login` asks before storing it. */
  async describeApiKey(apiKey: string): Promise<KeyInfo> {
    const context: CallContext = { action: 'checking the API key', credential: 'API key' };
    let response: VaultResponse;
    try {
      response = await this.call({ method: 'GET', path: '/api/v1/auth/self', credential: apiKey }, context, [200]);
    } catch (error) {
      // Without this, a 404 would read as a missing environment: say which server lacks what. A
      // server from before login and a vault URL with a path too many answer alike.
      if (error instanceof VaultError && error.status === 404) {
        throw new VaultError('RWS_VAULT_NOT_FOUND', `the server at ${this.base} has no /api/v1/auth/self`, `${VAULT_URL_HINT}; or upgrade secrets-server to a version with login support`, { status: 404 });
      }
      throw error;
    }
    return parseKeyInfo(response.body, this.origin);
  }

  async health(): Promise<void> {
    await this.call({ method: 'GET', path: '/healthz' }, { action: 'checking health', credential: undefined }, [200]);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  private async call(request: VaultRequest, context: CallContext, expected: readonly number[]): Promise<VaultResponse> {
    if (request.credential !== undefined) checkCredential(request.credential, context.credential ?? 'credential');
    const response = await this.transport.send(request);
    if (!expected.includes(response.status)) throw statusError(response, context, this.origin, this.base);
    return response;
  }
}

export type WatchedBatch = { changed: false; etag: string | undefined } | { changed: true; secrets: Map<string, string>; etag: string | undefined };

function checkCredential(value: string, name: string): void {
  if (!HEADER_SAFE.test(value)) {
    throw new VaultError('RWS_VAULT_AUTH', `the ${name} is empty or holds spaces or characters an HTTP header cannot carry`, `check the ${name} for stray whitespace or line breaks`);
  }
}

async function readCaFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    // A setting to fix, as an unreadable config file or RWS_X_FILE is (the same code and exit
    // status), not a TLS failure: no connection was tried.
    throw new ConfigError('RWS_CONFIG_UNREADABLE', `cannot read the CA file ${file}: ${describeReadFailure((error as { code?: unknown }).code)}`, 'check the path given by --ca-file, RWS_CA_FILE or ca_file in the config file, and that this user may read it');
  }
  if (bytes.length > MAX_CA_FILE_BYTES) throw new VaultError('RWS_VAULT_TLS', `cannot read the CA file ${file} (EFBIG)`, 'check --ca-file / RWS_CA_FILE');
  const pem = bytes.toString('utf8');
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new VaultError('RWS_VAULT_TLS', `the CA file ${file} holds no PEM certificate`, 'give --ca-file / RWS_CA_FILE a PEM file of CA certificates');
  }
  return pem;
}

/** The errno in words and as itself: "no such file (ENOENT)". */
function describeReadFailure(code: unknown): string {
  if (typeof code !== 'string') return 'unknown error';
  const words: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a part of the path is not a directory', ELOOP: 'too many symbolic links' };
  return words[code] === undefined ? code : `${words[code]} (${code})`;
}
