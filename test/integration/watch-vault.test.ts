// --watch against a real secrets-server: long-poll, one-use tokens per refresh (audit rows), the
// server going away and coming back, a revoked API key, a pre-minted token running out.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, call, cliOk, makeApiKey, makeStore, startServer, token, type TestStore } from '../server/helpers/server.js';
import { execa } from 'execa';
import { baseEnv, BIN, makeRuntimeDir, removeDir } from '../helpers/cli.js';
import { alive, CHILD_COMMAND, freePort, readRecord, startServerOn, startWatch, until, ups } from '../helpers/watch.js';

const SECRETS = { APP_A: 'alpha-value-1', APP_B: 'bravo-value-1', OTHER: 'not-for-this-app' };

let runtimeDir: string;
let counter = 0;

beforeAll(() => {
  runtimeDir = makeRuntimeDir();
});

afterAll(() => removeDir(runtimeDir));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function scenario(): Promise<{ store: TestStore; key: { id: string; key: string }; record: string; port: number; server: { url: string; stop(): Promise<void> } }> {
  const store = await makeStore({ prod: SECRETS });
  const key = await makeApiKey(store, ['prod'], ['APP_*']);
  const port = await freePort();
  const server = await startServerOn(store.dir, port);
  return { store, key, record: join(store.root, `record-${++counter}.jsonl`), port, server };
}

function watchEnv(url: string, apiKey: string, record: string): Record<string, string> {
  return { RWS_VAULT_URL: url, RWS_API_KEY: apiKey, WATCH_RECORD: record, WATCH_NAMES: 'APP_A,APP_B' };
}

const setSecret = (store: TestStore, name: string, value: string) => cliOk(['secret', 'set', 'prod', name, '--store', store.dir], { input: value });
const watchArgs = (...extra: string[]) => ['-e', 'prod', '-k', 'APP_*', '--watch', '--keep-env', 'WATCH_*', ...extra, '--', ...CHILD_COMMAND];

/** Nothing any side printed or stored holds a value or the API key. */
function expectNoLeak(texts: string[], store: TestStore, apiKey: string): void {
  const all = [...texts, JSON.stringify(auditRowsSync(store.dir))].join('\n');
  for (const value of [...Object.values(SECRETS), 'alpha-value-2', apiKey]) expect(all).not.toContain(value);
}

describe('run-with-secrets --watch with a vault', () => {
  it('case 8: long-poll sees a change long before --watch-interval 30s; each refresh is one mint, one batch, one revoke', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '30s', '--debounce', '0'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      expect(first.seen).toEqual({ APP_A: 'alpha-value-1', APP_B: 'bravo-value-1' });
      // Let the long-poll be held (it is, within a few ms of the child's start).
      await sleep(500);
      const edited = Date.now();
      await setSecret(store, 'APP_A', 'alpha-value-2');
      const second = await until('the restarted child', () => ups(record)[1], 15_000);
      expect(second.seen).toEqual({ APP_A: 'alpha-value-2', APP_B: 'bravo-value-1' });
      console.log(`case 8: secret set to the new child up: ${second.at! - edited} ms`);
      // Pushed by the held request, not found by a 30 s poll (the timing is bench/watch.mjs's job).
      expect(second.at! - edited).toBeLessThan(10_000);
      // The next long-poll is held again before the wrapper stops (its row is written when it ends).
      await until('the next held refresh', () => auditRowsSync(store.dir).filter((row) => row.event === 'token.generate').length >= 3, 10_000);
      wrapper.kill('SIGTERM');
      await wrapper;
      await sleep(300);

      // Per refresh, the audit trail shows one token: generate, batch, revoke, in that order; the
      // request held when the wrapper stopped was closed by it (499: not charged) and revoked.
      const rows = auditRowsSync(store.dir).filter((row) => row.api_key_id === key.id);
      const byToken = new Map<string, string[]>();
      for (const row of rows) if (typeof row.jti === 'string') byToken.set(row.jti, [...(byToken.get(row.jti) ?? []), `${row.event}:${row.status}`]);
      expect(byToken.size).toBe(3);
      const groups = [...byToken.values()];
      for (const events of groups.slice(0, -1)) expect(events).toEqual(['token.generate:201', 'secret.batch:200', 'token.revoke:204']);
      // The last was held when the wrapper stopped: the wrapper hung up (the server records a
      // 499, uncharged, when it notices, which may be after the revoke) and revoked it.
      expect([...groups.at(-1)!].sort(), JSON.stringify(groups)).toEqual(['secret.batch:499', 'token.generate:201', 'token.revoke:204']);
      expectNoLeak([wrapper.stderrText()], store, key.key);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('case 5: server down, an edit, server up: exactly one restart, no tight loop meanwhile, each state change said once', async () => {
    const { store, key, record, port, server } = await scenario();
    let again: { url: string; stop(): Promise<void> } | undefined;
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '30s', '--debounce', '500ms', '-v'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      await sleep(300);
      // From here on: the server closes its listener (and answers the held request) before it exits.
      const downAt = wrapper.stderrText().length;
      await server.stop();
      await setSecret(store, 'APP_B', 'bravo-value-2');
      await sleep(4000);
      // While the server is away the child keeps running, and the wrapper asks rarely.
      expect(alive(first.pid)).toBe(true);
      const whileDown = wrapper.stderrText().slice(downAt);
      const attempts = whileDown.match(/tokens\/generate attempt 1\/1: /g) ?? [];
      expect(attempts.length, whileDown).toBeGreaterThanOrEqual(1);
      expect(attempts.length).toBeLessThanOrEqual(6);
      // Said once per state: the first failure (refused, most likely; a reset while the server
      // closes reads as a failed answer), never the same code twice in a row.
      const warnings = [...whileDown.matchAll(/warning (RWS_VAULT_[A-Z_]+): vault environment prod \(pattern APP_\*\): refresh failed/g)].map((match) => match[1]);
      expect(warnings.length, whileDown).toBeGreaterThanOrEqual(1);
      expect(warnings.length).toBeLessThanOrEqual(2);
      expect(warnings).toContain('RWS_VAULT_UNREACHABLE');
      expect(new Set(warnings).size).toBe(warnings.length);
      const rowsBefore = auditRowsSync(store.dir).length;
      again = await startServerOn(store.dir, port);
      const second = await until('the restarted child', () => ups(record)[1], 70_000);
      expect(second.seen).toEqual({ APP_A: 'alpha-value-1', APP_B: 'bravo-value-2' });
      await sleep(2500);
      expect(ups(record)).toHaveLength(2);
      expect(wrapper.stderrText().match(/restarting the child/g)).toHaveLength(1);
      expect(wrapper.stderrText().match(/refreshing again/g)).toHaveLength(1);
      // The server counts: since it came back, a refresh that fetched the change and one held
      // request (each mint, batch, revoke): no burst of retries.
      const rows = auditRowsSync(store.dir).slice(rowsBefore).filter((row) => row.api_key_id === key.id);
      const mints = rows.filter((row) => row.event === 'token.generate').length;
      expect(mints).toBeGreaterThanOrEqual(2);
      expect(mints).toBeLessThanOrEqual(3);
      wrapper.kill('SIGTERM');
      await wrapper;
      expectNoLeak([wrapper.stderrText()], store, key.key);
    } finally {
      await again?.stop();
      await server.stop();
      await store.cleanup();
    }
  }, 120_000);

  it('a vault that flaps (down, up, down, …): the child keeps running untouched, no request storm, no repeated line; the next edit restarts it once', async () => {
    const { store, key, record, port, server } = await scenario();
    let current = server;
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '1s', '--debounce', '0'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      const rowsBefore = auditRowsSync(store.dir).length;
      const flaps = 6;
      for (let flap = 0; flap < flaps; flap++) {
        await sleep(400 + Math.floor(Math.random() * 600));
        await current.stop();
        await sleep(300 + Math.floor(Math.random() * 600));
        current = await startServerOn(store.dir, port);
      }
      expect(alive(first.pid)).toBe(true);
      expect(ups(record)).toHaveLength(1);
      const stderr = wrapper.stderrText();
      expect(stderr).not.toContain('restarting the child');
      // Each state change is said once: never the same warning twice without a recovery between.
      const lines = stderr.split('\n').filter((line) => /refresh failed|refreshing again/.test(line));
      for (const [index, line] of lines.entries()) if (index > 0) expect(line, stderr).not.toBe(lines[index - 1]);
      expect(lines.length, stderr).toBeLessThanOrEqual(2 * flaps + 2);
      // The servers counted every mint they saw: about one refresh per second of the run, not a storm.
      const mints = auditRowsSync(store.dir).slice(rowsBefore).filter((row) => row.event === 'token.generate').length;
      expect(mints).toBeLessThanOrEqual(4 * flaps + 4);
      // The vault stays up now: an edit restarts the child exactly once, with the new value.
      await sleep(1500);
      await setSecret(store, 'APP_A', 'alpha-value-2');
      const second = await until('the restarted child', () => ups(record)[1], 70_000);
      expect(second.seen).toEqual({ APP_A: 'alpha-value-2', APP_B: 'bravo-value-1' });
      await sleep(2500);
      expect(ups(record)).toHaveLength(2);
      expect(alive(first.pid)).toBe(false);
      wrapper.kill('SIGTERM');
      await wrapper;
      expectNoLeak([wrapper.stderrText()], store, key.key);
    } finally {
      await current.stop();
      await store.cleanup();
    }
  }, 120_000);

  it('case 6: the API key revoked: the held refresh is refused, the child stops and the wrapper exits 77', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '30s'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      await cliOk(['apikey', 'revoke', key.id, '--store', store.dir]);
      const result = await wrapper;
      expect(result.exitCode).toBe(77);
      expect(alive(first.pid)).toBe(false);
      expect(readRecord(record).map((event) => event.event)).toEqual(['up', 'term']);
      expect(result.stderr).toMatch(/error RWS_WATCH_REVOKED: the vault at \S+ refused the API key while minting a token: .*; stopping the child \(--on-revoke exit\)/);
      // The held refresh's token went with its key: the new mint, at once, finds the key refused;
      // no line says before that the child keeps running.
      expect(result.stderr).not.toContain('warning RWS_VAULT_AUTH');
      expectNoLeak([result.stderr], store, key.key);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('a rotated value the secrets file cannot carry: the running child is kept and the failure said, not stopped and left dead (exit 125)', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '30s', '--debounce', '0', '--inject-as', 'file'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      await sleep(500);
      await setSecret(store, 'APP_A', 'line one\nline two');
      await until('the refusal', () => wrapper.stderrText().includes('RWS_FORMAT_UNSUPPORTED'), 15_000);
      await sleep(500);
      expect(alive(first.pid)).toBe(true);
      expect(wrapper.exitCode).toBe(null);
      expect(wrapper.stderrText()).not.toContain('restarting the child');
      // The next value it can carry restarts the child as usual.
      await setSecret(store, 'APP_A', 'alpha-value-2');
      const second = await until('the restarted child', () => ups(record)[1], 15_000);
      expect(second.seen).toMatchObject({ APP_A: 'alpha-value-2' });
      expect(alive(first.pid)).toBe(false);
      process.kill(wrapper.pid!, 'SIGTERM');
      await wrapper;
      expectNoLeak([wrapper.stderrText()], store, key.key);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('a vault that hangs (SIGSTOP) during a held refresh: after SIGTERM the revoke waits, but a second SIGTERM ends the wrapper at once', async () => {
    const store = await makeStore({ prod: SECRETS });
    const key = await makeApiKey(store, ['prod'], ['APP_*']);
    const record = join(store.root, `record-${++counter}.jsonl`);
    const server = await startServer(store);
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '30s', '--timeout', '60', '-v'), runtimeDir, watchEnv(server.url, key.key, record));
      // process.kill, not wrapper.kill: execa would follow with its own SIGKILL after 5 s.
      const first = await until('the first child', () => ups(record)[0]);
      // A tagged answer is long-polled at once: a second after the start line, a refresh is held.
      await until('the watch to start', () => wrapper.stderrText().includes('watching vault'));
      await sleep(1000);
      server.process.kill('SIGSTOP');
      process.kill(wrapper.pid!, 'SIGTERM');
      await until('the child to go', () => !alive(first.pid));
      await sleep(300);
      const second = Date.now();
      process.kill(wrapper.pid!, 'SIGTERM');
      const result = await wrapper;
      expect(Date.now() - second).toBeLessThan(5000);
      expect(result.signal).toBe('SIGTERM');
      expectNoLeak([result.stderr], store, key.key);
    } finally {
      server.process.kill('SIGCONT');
      await server.stop('SIGKILL');
      await store.cleanup();
    }
  }, 60_000);

  it('--dry-run --watch says what a refused credential would do (a run on local files does not: it has none)', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const result = await execa(BIN, watchArgs('--dry-run', '--on-revoke', 'keep'), { env: baseEnv(runtimeDir, watchEnv(server.url, key.key, record)), extendEnv: false, reject: false });
      expect(result.exitCode).toBe(0);
      expect(result.stdout).toMatch(/would watch vault environment prod .*; if the vault refuses the credential: keep the child, stop refreshing$/m);
      expectNoLeak([result.stdout, result.stderr], store, key.key);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('--on-revoke keep: the child keeps running, refreshing stops, and the wrapper says so once', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const wrapper = startWatch(watchArgs('--watch-interval', '2s', '--on-revoke', 'keep'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      await cliOk(['apikey', 'revoke', key.id, '--store', store.dir]);
      await until('the line', () => wrapper.stderrText().includes('RWS_WATCH_REVOKED'), 20_000);
      const rows = auditRowsSync(store.dir).length;
      await sleep(5000);
      expect(alive(first.pid)).toBe(true);
      // No refresh after the refusal.
      expect(auditRowsSync(store.dir).length).toBe(rows);
      expect(wrapper.stderrText()).toMatch(/warning RWS_WATCH_REVOKED: .*refreshing has stopped, and the child keeps running with the secrets it has \(--on-revoke keep\)/);
      expect(wrapper.stderrText().match(/RWS_WATCH_REVOKED/g)).toHaveLength(1);
      wrapper.kill('SIGTERM');
      expect((await wrapper).signal).toBe('SIGTERM');
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('a refresh refused because its API key already has --max-long-polls-per-key requests held is said as that, not as failed authentications', async () => {
    const store = await makeStore({ prod: SECRETS });
    const key = await makeApiKey(store, ['prod'], ['APP_*']);
    const record = join(store.root, `record-${++counter}.jsonl`);
    const server = await startServer(store, ['--max-long-polls-per-key', '1']);
    try {
      // Another holder of the same API key (another wrapper, say) takes the one slot.
      const held = await token(server, key.key, { environment: 'prod', key_pattern: 'APP_*', ttl_minutes: 5 });
      const batch = `${server.url}/api/v1/vault/secrets/batch`;
      const etag = (await call(batch, { auth: held, json: { environment: 'prod', pattern: 'APP_*' } })).headers.get('etag')!;
      const holding = call(`${batch}?wait=60`, { auth: held, json: { environment: 'prod', pattern: 'APP_*' }, headers: { 'if-none-match': etag } }).catch(() => undefined);
      const wrapper = startWatch(watchArgs('--watch-interval', '30s'), runtimeDir, watchEnv(server.url, key.key, record));
      const first = await until('the first child', () => ups(record)[0]);
      await until('the refusal', () => wrapper.stderrText().includes('RWS_VAULT_RATE_LIMITED'), 15_000);
      const line = wrapper.stderrText().split('\n').find((text) => text.includes('RWS_VAULT_RATE_LIMITED'))!;
      expect(line).toMatch(/refused to hold the refresh: this API key already has as many requests waiting as the server allows \(secrets-server serve --max-long-polls-per-key\)/);
      expect(line).not.toContain('is refusing this address after too many failed authentications');
      expect(alive(first.pid)).toBe(true);
      process.kill(wrapper.pid!, 'SIGTERM');
      await wrapper;
      await server.stop();
      await holding;
      expectNoLeak([wrapper.stderrText()], store, key.key);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('a pre-minted token: refreshed with until it is used up, then --on-revoke (exit 77); the wrapper mints nothing', async () => {
    const { store, key, record, server } = await scenario();
    try {
      const generate = await execa(BIN, ['token', 'generate', '-e', 'prod', '-k', 'APP_*', '--usage-limit', '3', '--ttl', '5', '--json', '--force'], {
        env: { PATH: process.env.PATH!, HOME: process.env.HOME!, RWS_VAULT_URL: server.url, RWS_API_KEY: key.key },
        extendEnv: false,
      });
      const token = (JSON.parse(generate.stdout) as { token: string }).token;
      const rowsBefore = auditRowsSync(store.dir).length;
      const env = { RWS_VAULT_URL: server.url, RWS_TOKEN: token, WATCH_RECORD: record, WATCH_NAMES: 'APP_A,APP_B' };
      const result = await startWatch(watchArgs('--watch-interval', '1s'), runtimeDir, env);
      expect(result.exitCode).toBe(77);
      expect(result.stderr).toMatch(/error RWS_WATCH_REVOKED: .*refused the token .*used up.*RWS_TOKEN_EXHAUSTED/);
      expect(ups(record)).toHaveLength(1);
      const rows = auditRowsSync(store.dir).slice(rowsBefore);
      expect(rows.filter((row) => row.event === 'token.generate')).toHaveLength(0);
      // Three uses: the first fetch and two refreshes (304s), then the refusal.
      expect(rows.filter((row) => row.event === 'secret.batch' && row.outcome === 'success')).toHaveLength(3);
      expect(result.stderr + result.stdout).not.toContain(token);
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);

  it('the "watching" line says how each credential refreshes: a one-use token minted per refresh from an API key, the uses of a pre-minted token', async () => {
    const { store, key, server } = await scenario();
    try {
      const generate = await execa(BIN, ['token', 'generate', '-e', 'prod', '-k', 'APP_*', '--usage-limit', '100', '--ttl', '5', '--json', '--force'], {
        env: { PATH: process.env.PATH!, HOME: process.env.HOME!, RWS_VAULT_URL: server.url, RWS_API_KEY: key.key },
        extendEnv: false,
      });
      const token = (JSON.parse(generate.stdout) as { token: string }).token;
      const tokenFile = join(store.root, 'watch.token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      // The child ends at once, and the watch with it: the line (-v) is said as the first child starts.
      const watchingLine = async (env: Record<string, string>, ...extra: string[]): Promise<string> => {
        const result = await startWatch(['-e', 'prod', '-k', 'APP_*', '--watch', '--watch-interval', '5s', '-v', ...extra, '--', 'true'], runtimeDir, { RWS_VAULT_URL: server.url, ...env });
        expect(result.exitCode, result.stderr).toBe(0);
        expect(result.stderr).not.toContain(token);
        return result.stderr.split('\n').find((line) => line.includes('watching vault'))!;
      };
      const viaKey = { RWS_API_KEY: key.key };
      expect(await watchingLine(viaKey)).toContain('(refreshing with a one-use token each time; long-polls when the vault offers it, else every 5s)');
      expect(await watchingLine(viaKey, '--per-key-requests')).toContain('(refreshing with new tokens each time, one request per key; every 5s)');
      const fromEnv = await watchingLine({ RWS_TOKEN: token });
      expect(fromEnv).toContain('(refreshing with the token from RWS_TOKEN, one of its uses each time; long-polls when the vault offers it, else every 5s)');
      expect(await watchingLine({}, '--token-file', tokenFile)).toContain(`(refreshing with the token from --token-file ${tokenFile}, one of its uses each time;`);
      expect(await watchingLine({ RWS_TOKEN: token }, '--per-key-requests')).toContain('(refreshing with the token from RWS_TOKEN, one of its uses per request; one request per key, every 5s)');
      expect(fromEnv).not.toContain('one-use');
    } finally {
      await server.stop();
      await store.cleanup();
    }
  }, 60_000);
});
