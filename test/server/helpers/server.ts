// Real processes for integration tests: the built bin, a store made with its own commands, and
// the server started on port 0; tests wait for its ready line rather than sleeping.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { execa } from 'execa';
import { Agent, type Dispatcher, fetch } from 'undici';
import { afterEach } from 'vitest';

export const BIN = fileURLToPath(new URL('../../../bin/secrets-server.js', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function cli(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = await execa(BIN, args, { input: options.input ?? '', stripFinalNewline: false, env: { VANTA_SOPS_FILES_PATH: '', ...options.env }, extendEnv: true, reject: false });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export async function cliOk(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<string> {
  const result = await cli(args, options);
  if (result.exitCode !== 0) throw new Error(`secrets-server ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

export interface TestStore {
  root: string;
  dir: string;
  cleanup(): Promise<void>;
}

export async function makeStore(secrets: Record<string, Record<string, string>> = {}): Promise<TestStore> {
  const root = await mkdtemp(path.join(tmpdir(), 'rws-server-'));
  const dir = path.join(root, 'store');
  await cliOk(['init', '--store', dir]);
  await Promise.all(
    Object.entries(secrets).map(([environment, values]) => cliOk(['secret', 'import', environment, '--format', 'json', '--store', dir], { input: JSON.stringify(values) })),
  );
  return { root, dir, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** `env`: for a store whose state is elsewhere (RWS_DATABASE_URL). */
export async function makeApiKey(store: TestStore, environments: string[], patterns: string[], extra: string[] = [], env: Record<string, string> = {}): Promise<{ id: string; key: string }> {
  const args = ['apikey', 'create', '--store', store.dir, '--name', 'test'];
  for (const environment of environments) args.push('--environment', environment);
  for (const pattern of patterns) args.push('--key-pattern', pattern);
  const out = await cliOk([...args, ...extra], { env });
  const id = /^id: (\S+)$/m.exec(out)?.[1];
  const key = /^key: (\S+)$/m.exec(out)?.[1];
  if (!id || !key) throw new Error('apikey create printed no id/key');
  return { id, key };
}

export interface RunningServer {
  url: string;
  process: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** `wrap`: a command that runs the server, e.g. ['unshare', '--pid', '--fork', '--kill-child']. */
export async function startServer(store: TestStore, args: string[] = [], env: Record<string, string> = {}, wrap: string[] = []): Promise<RunningServer> {
  // Port 0 (any free one) unless the test names one (to start a server again where it was).
  const argv = ['serve', '--store', store.dir, ...(args.includes('--port') ? [] : ['--port', '0']), ...args];
  const [command, ...prefix] = wrap.length > 0 ? [...wrap, process.execPath, BIN] : [BIN];
  const child = spawn(command as string, [...prefix, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /secrets-server listening on (\S+)\n/.exec(stdout);
      if (match?.[1]) resolve(match[1]);
    });
    void exited.then((code) => reject(new Error(`server exited ${code} before it was ready: ${stderr}`)));
  });
  return {
    url,
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Stores and servers made through it are stopped and removed after each test of the file that
 * calls this at its top level, failed or not, so a test need not track them itself.
 */
export function cleanedAfterEach(): { store: typeof makeStore; serve: typeof startServer } {
  const stores: TestStore[] = [];
  const servers: RunningServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    for (const store of stores.splice(0)) await store.cleanup();
  });
  return {
    store: async (...args) => {
      const store = await makeStore(...args);
      stores.push(store);
      return store;
    },
    serve: async (...args) => {
      const server = await startServer(...args);
      servers.push(server);
      return server;
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

export async function call(url: string, options: { method?: string; auth?: string; json?: unknown; body?: string; headers?: Record<string, string>; dispatcher?: Dispatcher } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.auth !== undefined) headers.authorization = `Bearer ${options.auth}`;
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(url, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, dispatcher: options.dispatcher });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers as unknown as Headers, body: parsed, text };
}

export async function generate(server: { url: string }, apiKey: string, request: Record<string, unknown>, dispatcher?: Dispatcher): Promise<Reply> {
  return call(`${server.url}/api/v1/vault/tokens/generate`, { auth: apiKey, json: request, dispatcher });
}

export async function token(server: { url: string }, apiKey: string, request: Record<string, unknown>): Promise<string> {
  const reply = await generate(server, apiKey, { subject: 'test', ...request });
  if (reply.status !== 201) throw new Error(`token generate answered ${reply.status}: ${reply.text}`);
  return reply.body.token as string;
}

export function tlsAgent(ca: string): Agent {
  return new Agent({ connect: { ca } });
}

export async function until(check: () => Promise<boolean>, timeoutMs = 3000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return Date.now() - start;
}

/** A request written by hand with node:http, for bodies fetch will not send (chunked, oversize). */
export async function rawRequest(url: string, options: { method: string; headers: Record<string, string>; chunks: Buffer[] }): Promise<{ status: number; body: any }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers: options.headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    for (const chunk of options.chunks) req.write(chunk);
    req.end();
  });
}

/** The store's audit rows, oldest first, read through the real `secrets-server audit --json`. */
export function auditRowsSync(dir: string, env: Record<string, string> = {}): Array<Record<string, unknown>> {
  const out = execFileSync(BIN, ['audit', '--json', '--limit', '10000', '--store', dir], { encoding: 'utf8', env: { ...process.env, ...env } });
  return out
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .reverse();
}

/** A self-signed certificate for 127.0.0.1 and its key, written into `dir` with the openssl CLI. */
export async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key };
}
