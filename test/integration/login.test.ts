// `login`, `logout` and `whoami` against real secrets-server processes, with real files under a
// private XDG_CONFIG_HOME and a real pseudo-terminal (script(1)) for the prompt.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { auditRowsSync, cliOk, makeApiKey, makeStore, startServer, until, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { BIN, baseEnv, fixture, makeRuntimeDir, makeSharedDir, removeDir, runBin, waitForLine } from '../helpers/cli.js';

let storeA: TestStore;
let storeB: TestStore;
let serverA: RunningServer;
let serverB: RunningServer;
let keyA: { id: string; key: string }; // A: prod, A_*
let keyA2: { id: string; key: string }; // A: prod, A_SECOND only (profile ci)
let keyB: { id: string; key: string }; // B: prod, B_*
let runtimeDir: string;
let home: string;
const printed: string[] = [];

beforeAll(async () => {
  storeA = await makeStore({ prod: { A_ONE: 'a-one-value', A_SECOND: 'a-second-value' } });
  storeB = await makeStore({ prod: { B_ONE: 'b-one-value' } });
  [keyA, keyA2, keyB] = await Promise.all([makeApiKey(storeA, ['prod'], ['A_*']), makeApiKey(storeA, ['prod'], ['A_SECOND'], ['--expires-at', '2099-01-01T00:00:00.000Z']), makeApiKey(storeB, ['prod'], ['B_*'])]);
  [serverA, serverB] = await Promise.all([startServer(storeA), startServer(storeB)]);
}, 60_000);

afterAll(async () => {
  // Nothing any command printed, and no server log, ever held a key.
  const all = [...printed, serverA?.stderr() ?? '', serverB?.stderr() ?? ''].join('\n');
  for (const key of [keyA, keyA2, keyB]) if (key) expect(all).not.toContain(key.key);
  await serverA?.stop();
  await serverB?.stop();
  await storeA?.cleanup();
  await storeB?.cleanup();
});

beforeEach(() => {
  runtimeDir = makeRuntimeDir();
  // HOME is private to the test too: nothing reads or writes the real ~/.config.
  home = join(runtimeDir, 'home');
  mkdirSync(home, { mode: 0o700 });
});

afterEach(() => removeDir(runtimeDir));

const credentialsFile = () => join(home, '.config', 'run-with-secrets', 'credentials.yaml');

async function rws(args: string[], options: { input?: string; env?: Record<string, string> } = {}) {
  const result = await runBin(args, { runtimeDir, env: { HOME: home, ...options.env }, ...(options.input === undefined ? {} : { input: options.input }) });
  printed.push(result.stdout, result.stderr);
  return result;
}

const login = (url: string, key: string, extra: string[] = [], env: Record<string, string> = {}) => rws(['login', '--vault-url', url, ...extra], { input: `${key}\n`, env });
const printEnv = (url: string, extra: string[] = [], env: Record<string, string> = {}) => rws(['--vault-url', url, '-e', 'prod', ...extra, '--', fixture('print-env.mjs')], { env });

describe('login', () => {
  it('checks a good key with the vault, stores it 0600 in a 0700 directory, and the next run needs no RWS_API_KEY', async () => {
    const result = await login(serverA.url, keyA.key);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`logged in to ${serverA.url} as test (${keyA.id}), profile default`);
    expect(result.stdout).toContain('grants environments prod with key patterns A_*; expires never');
    expect(result.stderr).toBe('');
    expect(lstatSync(credentialsFile()).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(home, '.config', 'run-with-secrets')).mode & 0o777).toBe(0o700);
    expect(readFileSync(credentialsFile(), 'utf8')).toContain(keyA.key);
    const rows = auditRowsSync(storeA.dir);
    expect(rows.at(-1)).toMatchObject({ event: 'auth.self', outcome: 'success', api_key_id: keyA.id });

    const run = await printEnv(serverA.url, ['-k', 'A_*']);
    expect(run.exitCode, run.stderr).toBe(0);
    const env = JSON.parse(run.stdout) as Record<string, string>;
    expect(env).toMatchObject({ A_ONE: 'a-one-value', A_SECOND: 'a-second-value' });
    // The stored key is the wrapper's credential: never the child's.
    expect(JSON.stringify(env)).not.toContain(keyA.key);
  });

  it('stores nothing when the vault refuses the key, and says why in one line with a code and a hint', async () => {
    const wrong = `rws_sk_${'0'.repeat(32)}`;
    const refused = await login(serverA.url, wrong);
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toMatch(/^run-with-secrets: error RWS_LOGIN_REFUSED: the vault at \S+ refused the API key: it is invalid, expired or revoked; nothing was stored \(hint: .+\)$/);
    expect(refused.stdout).toBe('');
    expect(existsSync(credentialsFile())).toBe(false);
    // A malformed key is refused before anything is sent, and never quoted.
    const malformed = await login(serverA.url, 'rws_sk_not-a-key');
    expect(malformed.stderr).toMatch(/^run-with-secrets: error RWS_CREDENTIAL_INVALID: the API key from stdin is malformed \(16 characters\)/);
    expect(malformed.stderr).not.toContain('not-a-key');
    // A refusal leaves an existing store exactly as it was.
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    const before = readFileSync(credentialsFile(), 'utf8');
    expect((await login(serverA.url, wrong, ['--profile', 'other'])).exitCode).toBe(125);
    expect(readFileSync(credentialsFile(), 'utf8')).toBe(before);
  });

  it('keeps keys for two profiles and two servers side by side, and each run picks its own', async () => {
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    expect((await login(serverA.url, keyA2.key, ['--profile', 'ci'])).exitCode).toBe(0);
    expect((await login(serverB.url, keyB.key)).exitCode).toBe(0);
    const stored = readFileSync(credentialsFile(), 'utf8');
    for (const { key } of [keyA, keyA2, keyB]) expect(stored).toContain(key);

    const a = JSON.parse((await printEnv(serverA.url, ['-k', 'A_*'])).stdout) as Record<string, string>;
    expect(a.A_ONE).toBe('a-one-value');
    // Profile ci holds the narrower key: A_* is outside its grant, A_SECOND is inside.
    const ci = await printEnv(serverA.url, ['--profile', 'ci', '-k', 'A_*']);
    expect(ci.stderr).toContain('RWS_VAULT_FORBIDDEN');
    const ciNarrow = JSON.parse((await printEnv(serverA.url, ['--profile', 'ci', '-k', 'A_SECOND'])).stdout) as Record<string, string>;
    expect(ciNarrow.A_SECOND).toBe('a-second-value');
    // RWS_PROFILE selects as --profile does, and the URL matches in any spelling of it.
    const viaEnv = await printEnv(`${serverA.url}/`, ['-k', 'A_SECOND'], { RWS_PROFILE: 'ci' });
    expect(viaEnv.exitCode, viaEnv.stderr).toBe(0);
    expect(auditRowsSync(storeA.dir).filter((row) => row.event === 'token.generate').at(-1)?.api_key_id).toBe(keyA2.id);
    const b = JSON.parse((await printEnv(serverB.url, ['-k', 'B_*'])).stdout) as Record<string, string>;
    expect(b).toMatchObject({ B_ONE: 'b-one-value' });
    expect(b).not.toHaveProperty('A_ONE');

    // Logging in again replaces that slot only.
    expect((await login(serverA.url, keyA2.key)).exitCode).toBe(0);
    const replaced = readFileSync(credentialsFile(), 'utf8');
    expect(replaced).not.toContain(keyA.key);
    expect(replaced).toContain(keyB.key);
  });

  it('ten logins at once for ten profiles, and logouts at once for five of them, all land; a lock left by a killed login is taken over', async () => {
    const profiles = Array.from({ length: 10 }, (_, i) => `p${i}`);
    const logins = await Promise.all(profiles.map((profile) => login(serverA.url, keyA.key, ['--profile', profile])));
    for (const result of logins) expect(result.exitCode, result.stderr).toBe(0);
    const storedProfiles = () => [...readFileSync(credentialsFile(), 'utf8').matchAll(/^ {4}profile: (\S+)$/gm)].map((match) => match[1]).sort();
    expect(storedProfiles()).toEqual(profiles);
    const logouts = await Promise.all(profiles.slice(0, 5).map((profile) => rws(['logout', '--vault-url', serverA.url, '--profile', profile])));
    for (const result of logouts) expect(result.stdout).toContain('removed the stored key');
    expect(storedProfiles()).toEqual(profiles.slice(5));
    expect(existsSync(`${credentialsFile()}.lock`)).toBe(false);

    // A login SIGKILLed while it held the lock: the next one waits until the lock is stale, then goes on.
    writeFileSync(`${credentialsFile()}.lock`, '', { mode: 0o600 });
    utimesSync(`${credentialsFile()}.lock`, new Date(Date.now() - 8000), new Date(Date.now() - 8000));
    const late = await login(serverA.url, keyA.key, ['--profile', 'late']);
    expect(late.exitCode, late.stderr).toBe(0);
    expect(storedProfiles()).toContain('late');
  }, 60_000);

  it('two logins that find one stale lock at once: one takes it over, the other waits for it, and both logins land', async (context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const lock = `${credentialsFile()}.lock`;
    expect((await login(serverA.url, keyA.key, ['--profile', 'first'])).exitCode).toBe(0);
    // A lock left by a killed login, stale (older than 10 s).
    writeFileSync(lock, '', { mode: 0o600 });
    utimesSync(lock, new Date(Date.now() - 20_000), new Date(Date.now() - 20_000));
    // The slow login has found the lock stale; strace holds its first step on the lock (removing
    // it, or moving it aside) for 5 s. Meanwhile the fast one takes the same stale lock over and
    // holds it: strace holds its fsync for 5 s, while it writes.
    const straceLog = join(runtimeDir, 'slow.strace');
    const slow = execa('strace', ['-f', '-qq', '-o', straceLog, '-P', lock, '-e', 'trace=unlink,rename', '-e', 'inject=unlink,rename:delay_enter=5000000:when=1', BIN, 'login', '--vault-url', serverA.url, '--profile', 'slow'], {
      input: `${keyA.key}\n`,
      extendEnv: false,
      env: baseEnv(runtimeDir, { HOME: home }),
      reject: false,
    });
    const slowStep = () => (existsSync(straceLog) ? readFileSync(straceLog, 'utf8') : '');
    await until(async () => slowStep().includes(lock), 20_000);
    const fast = execa('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fsync', '-e', 'inject=fsync:delay_enter=5000000', BIN, 'login', '--vault-url', serverA.url, '--profile', 'fast'], {
      input: `${keyA.key}\n`,
      extendEnv: false,
      env: baseEnv(runtimeDir, { HOME: home }),
      reject: false,
    });
    // The race is staged only if the fast login holds the lock before the slow one's held step ends.
    const fastHolds = () => existsSync(lock) && Date.now() - lstatSync(lock).mtimeMs < 10_000;
    await until(async () => fastHolds() || slowStep().includes('DELAYED'), 20_000);
    const staged = fastHolds() && !slowStep().includes('DELAYED');
    const [slowDone, fastDone] = await Promise.all([slow, fast]);
    printed.push(slowDone.stdout, slowDone.stderr, fastDone.stdout, fastDone.stderr);
    if (!staged) return context.skip();
    expect(slowDone.exitCode, slowDone.stderr).toBe(0);
    expect(fastDone.exitCode, fastDone.stderr).toBe(0);
    const stored = [...readFileSync(credentialsFile(), 'utf8').matchAll(/^ {4}profile: (\S+)$/gm)].map((match) => match[1]).sort();
    expect(stored).toEqual(['fast', 'first', 'slow']);
    expect(readdirSync(join(home, '.config', 'run-with-secrets'))).toEqual(['credentials.yaml']);
  }, 60_000);

  it('a login killed in the middle of a takeover, with the lock of a live holder moved aside: the next login puts it back and waits, and every login lands', async (context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const lock = `${credentialsFile()}.lock`;
    const dir = join(home, '.config', 'run-with-secrets');
    expect((await login(serverA.url, keyA.key, ['--profile', 'first'])).exitCode).toBe(0);
    writeFileSync(lock, '', { mode: 0o600 });
    utimesSync(lock, new Date(Date.now() - 20_000), new Date(Date.now() - 20_000));
    const traced = (strace: string[], profile: string) =>
      execa('strace', ['-f', '-qq', ...strace, BIN, 'login', '--vault-url', serverA.url, '--profile', profile], { input: `${keyA.key}\n`, extendEnv: false, env: baseEnv(runtimeDir, { HOME: home }), reject: false });
    // The taker has found the stale lock; strace holds its move aside for 3 s, and then, for good,
    // its putting back of what it moved.
    const straceLog = join(runtimeDir, 'taker.strace');
    const taker = traced(['-o', straceLog, '-P', lock, '-e', 'trace=rename,link,linkat', '-e', 'inject=rename:delay_enter=3000000:when=1', '-e', 'inject=link,linkat:delay_enter=60000000'], 'taker');
    const takerStep = () => (existsSync(straceLog) ? readFileSync(straceLog, 'utf8') : '');
    await until(async () => takerStep().includes(lock), 20_000);
    // Meanwhile the holder takes the stale lock over and holds it for 6 s (strace holds its first fsync).
    const holder = traced(['-o', '/dev/null', '-e', 'trace=fsync', '-e', 'inject=fsync:delay_enter=6000000:when=1'], 'holder');
    const holderHolds = () => existsSync(lock) && Date.now() - lstatSync(lock).mtimeMs < 10_000;
    await until(async () => holderHolds() || takerStep().includes('DELAYED'), 20_000);
    // Staged only if the holder holds the lock before the taker's held move ends.
    if (!holderHolds() || takerStep().includes('DELAYED')) {
      await Promise.all([taker, holder]);
      return context.skip();
    }
    // The taker moved the holder's lock aside and is held before it puts it back: killed there.
    await until(async () => /link(at)?\(/.test(takerStep()), 20_000);
    const aside = readdirSync(dir).find((name) => name.startsWith('.credentials.yaml.lock.'));
    expect(aside, readdirSync(dir).join(' ')).toBeDefined();
    expect(existsSync(lock)).toBe(false);
    process.kill(Number(/^\.credentials\.yaml\.lock\.(\d+)\./.exec(aside!)![1]), 'SIGKILL');
    // strace would sit out its delay before it noticed: it goes too.
    taker.kill('SIGKILL');
    // A login now, while the holder still writes: without the holder's lock, it would write too,
    // and the holder's rename, of what it read before, would then drop this login's key.
    const late = await login(serverA.url, keyA.key, ['--profile', 'late']);
    const [takerDone, holderDone] = await Promise.all([taker, holder]);
    printed.push(takerDone.stdout, takerDone.stderr, holderDone.stdout, holderDone.stderr);
    expect(holderDone.exitCode, holderDone.stderr).toBe(0);
    expect(late.exitCode, late.stderr).toBe(0);
    const stored = [...readFileSync(credentialsFile(), 'utf8').matchAll(/^ {4}profile: (\S+)$/gm)].map((match) => match[1]).sort();
    expect(stored).toEqual(['first', 'holder', 'late']);
    expect(readdirSync(dir)).toEqual(['credentials.yaml']);
  }, 60_000);

  it('a login SIGKILLed between writing its temp file and the rename: the key in it is removed by logout --all, or by the next login', async (context) => {
    if (!(await execa('strace', ['-qq', '-o', '/dev/null', 'true']).then(() => true, () => false))) return context.skip();
    const dir = join(home, '.config', 'run-with-secrets');
    const temps = () => (existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.tmp')) : []);
    const killedMidWrite = async (profile: string) => {
      // strace holds every fsync for 5 s: the login is SIGKILLed while its temp file waits for its rename.
      const slow = execa('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=fsync', '-e', 'inject=fsync:delay_enter=5000000', BIN, 'login', '--vault-url', serverA.url, '--profile', profile], {
        input: `${keyA.key}\n`,
        extendEnv: false,
        env: baseEnv(runtimeDir, { HOME: home }),
        reject: false,
      });
      // Killed only once the temp file holds the key (it exists a moment before it is written).
      const holdsKey = (name: string) => (existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8').includes(keyA.key) : false);
      const written = () => temps().find(holdsKey);
      await until(async () => written() !== undefined, 10_000);
      const temp = written()!;
      process.kill(Number(/^\.credentials\.yaml\.(\d+)\./.exec(temp)![1]), 'SIGKILL');
      await slow;
      expect(readFileSync(join(dir, temp), 'utf8')).toContain(keyA.key);
    };
    await killedMidWrite('one');
    const all = await rws(['logout', '--all']);
    expect(all.exitCode, all.stderr).toBe(0);
    expect(readdirSync(dir)).toEqual([]);

    await killedMidWrite('two');
    // The killed login's lock is stale after 10 s; here it is made so at once.
    utimesSync(`${credentialsFile()}.lock`, new Date(Date.now() - 20_000), new Date(Date.now() - 20_000));
    expect((await login(serverA.url, keyA2.key, ['--profile', 'three'])).exitCode).toBe(0);
    expect(temps()).toEqual([]);
    expect(readFileSync(credentialsFile(), 'utf8')).not.toContain(keyA.key);
  }, 60_000);

  it('an env key overrides the stored one; login warns that it would, and check names the source in use', async () => {
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    const warned = await login(serverA.url, keyA.key, [], { RWS_API_KEY: keyA2.key });
    expect(warned.exitCode).toBe(0);
    expect(warned.stderr).toMatch(/^run-with-secrets: warning RWS_STORED_KEY_HIDDEN: RWS_API_KEY is set: runs use it, not the key stored now, until unset$/);
    const fileEnv = await login(serverA.url, keyA.key, [], { RWS_API_KEY_FILE: '/nonexistent' });
    expect(fileEnv.stderr).toContain('RWS_STORED_KEY_HIDDEN: RWS_API_KEY_FILE is set');

    const run = await printEnv(serverA.url, ['-k', 'A_SECOND'], { RWS_API_KEY: keyA2.key });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(auditRowsSync(storeA.dir).filter((row) => row.event === 'token.generate').at(-1)?.api_key_id).toBe(keyA2.id);

    const withEnv = await rws(['check', '--vault-url', serverA.url, '-e', 'prod', '-k', 'A_SECOND'], { env: { RWS_API_KEY: keyA2.key } });
    expect(withEnv.stdout).toContain('✓ credential: API key from RWS_API_KEY');
    const stored = await rws(['check', '--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE']);
    expect(stored.exitCode, stored.stdout).toBe(0);
    expect(stored.stdout).toContain(`✓ credential: API key from the stored login for ${serverA.url}, profile default (${credentialsFile()})`);
  });

  it('refuses a key on argv, whatever carries it, without echoing it and without storing anything', async () => {
    for (const args of [[keyA.key], ['--key', keyA.key], ['--', keyA.key], [`--subject=${keyA.key}`]]) {
      const result = await rws(['login', '--vault-url', serverA.url, ...args]);
      expect(result.exitCode, args.join(' ')).toBe(125);
      expect(result.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: an API key on the command line is refused/);
      expect(result.stderr).not.toContain(keyA.key);
    }
    const stray = await rws(['login', '--vault-url', serverA.url, 'something']);
    expect(stray.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: login takes no arguments; the API key is read from stdin/);
    expect(stray.stderr).not.toContain('something');
    const unknown = await rws(['login', '--vault-url', serverA.url, '--api-key', keyA.key]);
    expect(unknown.exitCode).toBe(125);
    expect(unknown.stderr).not.toContain(keyA.key);
    expect(existsSync(credentialsFile())).toBe(false);
  });
});

describe('logout and whoami', () => {
  it('whoami prints id, name, grants and expiry as the vault says, never the key', async () => {
    expect((await login(serverA.url, keyA2.key, ['--profile', 'ci'])).exitCode).toBe(0);
    const result = await rws(['whoami', '--vault-url', serverA.url, '--profile', 'ci']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        `vault: ${serverA.url} (profile ci)`,
        `credential: API key from the stored login for ${serverA.url}, profile ci (${credentialsFile()})`,
        `key: test (${keyA2.id})`,
        'grants environments prod with key patterns A_SECOND; expires 2099-01-01T00:00:00.000Z',
        'checked with the vault just now',
      ].join('\n'),
    );
    // With no stored key for that slot: the same error a run gets, pointing at login.
    const none = await rws(['whoami', '--vault-url', serverB.url]);
    expect(none.exitCode).toBe(125);
    expect(none.stderr).toMatch(/RWS_CREDENTIAL_MISSING: .*\(hint: run-with-secrets login, or set RWS_API_KEY/);
  });

  it('a key name with a format character (the zero-width joiner of an emoji, a bidi override) logs in, and is shown escaped', async () => {
    const name = 'dev 👩\u200d💻 laptop\u202e';
    const made = await cliOk(['apikey', 'create', '--store', storeA.dir, '--name', name, '--environment', 'prod', '--key-pattern', 'A_*']);
    const id = /^id: (\S+)$/m.exec(made)?.[1] as string;
    const key = /^key: (\S+)$/m.exec(made)?.[1] as string;
    const shown = 'dev 👩\\u200d💻 laptop\\u202e';
    const result = await login(serverA.url, key, ['--profile', 'emoji']);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`logged in to ${serverA.url} as ${shown} (${id}), profile emoji\n`);
    const who = await rws(['whoami', '--vault-url', serverA.url, '--profile', 'emoji']);
    expect(who.exitCode, who.stderr).toBe(0);
    expect(who.stdout).toContain(`\nkey: ${shown} (${id})\n`);
    expect(`${result.stdout}${who.stdout}`).not.toMatch(/[\u200d\u202e]/);
  });

  it('a stored key the vault then revokes: the 401 says to put a new key where this one came from, login included, not only RWS_API_KEY or RWS_API_KEY_FILE', async () => {
    const revoked = await makeApiKey(storeA, ['prod'], ['A_*']);
    expect((await login(serverA.url, revoked.key, ['--profile', 'gone'])).exitCode).toBe(0);
    await cliOk(['apikey', 'revoke', revoked.id, '--store', storeA.dir]);
    const result = await printEnv(serverA.url, ['--profile', 'gone', '-k', 'A_ONE']);
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/^run-with-secrets: error RWS_VAULT_AUTH: .* refused the API key while minting a token: .*\(hint: get a new API key \(secrets-server apikey create\) and put it where this one came from: .*or run-with-secrets login \(run-with-secrets check names which\)\)$/);
    expect(result.stderr).not.toContain(revoked.key);
  });

  it('both work offline for the stored side; whoami says plainly that it could not ask the vault', async () => {
    const store = await makeStore({ prod: { C_ONE: 'c' } });
    const key = await makeApiKey(store, ['prod'], ['C_*']);
    const server = await startServer(store);
    try {
      expect((await login(server.url, key.key)).exitCode).toBe(0);
      expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    } finally {
      await server.stop();
      await store.cleanup();
    }
    const offline = await rws(['whoami', '--vault-url', server.url, '--retries', '0']);
    expect(offline.exitCode, offline.stderr).toBe(0);
    expect(offline.stdout).toContain(`key: test (${key.id})`);
    expect(offline.stdout).toContain('grants environments prod with key patterns C_*; expires never');
    expect(offline.stdout).toMatch(/not checked: the vault could not be asked \(RWS_VAULT_UNREACHABLE\); this is what login stored at \d{4}-/);
    expect(offline.stderr).toMatch(/^run-with-secrets: warning RWS_VAULT_UNREACHABLE: /);
    expect(offline.stdout + offline.stderr).not.toContain(key.key);

    const out = await rws(['logout', '--vault-url', server.url]);
    expect(out.exitCode, out.stderr).toBe(0);
    expect(out.stdout).toBe(`removed the stored key ${key.id} for ${server.url}, profile default; it stays valid at the vault until revoked there (secrets-server apikey revoke ${key.id})`);
    const stored = readFileSync(credentialsFile(), 'utf8');
    expect(stored).not.toContain(key.key);
    expect(stored).toContain(keyA.key);
    expect((await rws(['logout', '--vault-url', server.url])).stdout).toBe(`no stored key for ${server.url}, profile default`);
    const gone = await printEnv(server.url);
    expect(gone.stderr).toContain('RWS_CREDENTIAL_MISSING');

    const all = await rws(['logout', '--all']);
    expect(all.exitCode).toBe(0);
    expect(existsSync(credentialsFile())).toBe(false);
    expect((await printEnv(serverA.url, ['-k', 'A_ONE'])).stderr).toContain('RWS_CREDENTIAL_MISSING');
  });
});

describe('a stored login someone else could read or wrote by hand', () => {
  it('is refused by runs, whoami and login, never quoting the key; logout --all removes it', async () => {
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    chmodSync(credentialsFile(), 0o644);
    for (const args of [['--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE', '--', 'true'], ['whoami', '--vault-url', serverA.url], ['check', '--vault-url', serverA.url, '-e', 'prod']]) {
      const result = await rws(args);
      expect(result.exitCode, args.join(' ')).toBe(125);
      expect(result.stderr + result.stdout).toContain('RWS_CREDENTIAL_FILE_MODE');
      expect(result.stderr + result.stdout).toContain(`chmod 600 ${credentialsFile()}`);
    }
    // login refuses it before reading a key, so nothing is typed into a store it would not use.
    const again = await login(serverA.url, keyA.key);
    expect(again.stderr).toMatch(/^run-with-secrets: error RWS_CREDENTIAL_FILE_MODE: /);

    chmodSync(credentialsFile(), 0o600);
    writeFileSync(credentialsFile(), readFileSync(credentialsFile(), 'utf8').replace('admin: false', 'admin: true\n    note: mine'));
    const edited = await rws(['--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE', '--', 'true']);
    expect(edited.stderr).toMatch(/^run-with-secrets: error RWS_CREDENTIAL_STORE_INVALID: .* is not a file run-with-secrets login wrote: entry 1 must hold exactly .* \(hint: run-with-secrets logout --all removes it; then log in again\)$/);
    expect((await rws(['logout', '--all'])).exitCode).toBe(0);
    expect(existsSync(credentialsFile())).toBe(false);
  });

  it('in a directory open to group or others: refused by runs and whoami with the chmod 700; login and logout narrow it and go on', async () => {
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    const store = join(home, '.config', 'run-with-secrets');
    chmodSync(store, 0o757);
    for (const args of [['--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE', '--', 'true'], ['whoami', '--vault-url', serverA.url]]) {
      const result = await rws(args);
      expect(result.exitCode, args.join(' ')).toBe(125);
      expect(result.stderr).toBe(
        `run-with-secrets: error RWS_CREDENTIAL_FILE_MODE: refusing the stored logins ${credentialsFile()}: their directory ${store} is open to group or others (mode 757) (hint: chmod 700 ${store}: logins are kept 0600 in a 0700 directory (a login narrows it too))`,
      );
    }
    const again = await login(serverA.url, keyA2.key, ['--profile', 'ci']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(lstatSync(store).mode & 0o777).toBe(0o700);
    chmodSync(store, 0o755);
    expect((await rws(['logout', '--vault-url', serverA.url, '--profile', 'ci'])).exitCode).toBe(0);
    expect(lstatSync(store).mode & 0o777).toBe(0o700);
    const run = await printEnv(serverA.url, ['-k', 'A_ONE']);
    expect(run.exitCode, run.stderr).toBe(0);
  });

  it("another user's (root under sudo, which kept that user's HOME): refused with a hint that never says to remove it, nor their fallback copy", async (context) => {
    if (process.getuid?.() !== 0) return context.skip();
    expect((await login(serverA.url, keyA.key)).exitCode).toBe(0);
    expect((await printEnv(serverA.url, ['-k', 'A_ONE', '--fallback'])).exitCode).toBe(0);
    const cacheDir = join(home, '.local', 'state', 'run-with-secrets', 'fallback');
    const copy = join(cacheDir, readdirSync(cacheDir).find((name) => name.endsWith('.bin'))!);
    chownSync(credentialsFile(), 65534, 65534);
    for (const args of [['--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE', '--', 'true'], ['whoami', '--vault-url', serverA.url]]) {
      const result = await rws(args);
      expect(result.exitCode, args.join(' ')).toBe(125);
      expect(result.stderr).toBe(`run-with-secrets: error RWS_CREDENTIAL_STORE_INVALID: refusing the stored logins ${credentialsFile()}: it is owned by uid 65534, not by you (hint: it is uid 65534's: run as that user, or point HOME (sudo -H) or XDG_CONFIG_HOME at your own; do not remove it)`);
    }
    chownSync(copy, 65534, 65534);
    const offline = await printEnv(serverA.url, ['-k', 'A_ONE', '--offline'], { RWS_API_KEY: keyA.key });
    expect(offline.exitCode).toBe(125);
    expect(offline.stderr).toContain(`error RWS_FALLBACK_UNSAFE: the fallback cache ${copy} is refused: it is owned by uid 65534, not by you (hint: it is uid 65534's: run as that user, or point HOME (sudo -H) or XDG_STATE_HOME at your own; do not remove it)`);
    expect(offline.stderr).not.toContain('fallback clean');
  });

  it("a ~/.config root made 0700 in the user's HOME (a login under sudo without -H): named, with root's chown of it, where the hint pointed at the logins file", async (context) => {
    if (process.getuid?.() !== 0) return context.skip();
    const shared = makeSharedDir();
    try {
      const theirs = join(shared, 'home');
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 65534, 65534);
      const config = join(theirs, '.config');
      mkdirSync(config, { mode: 0o700 });
      const store = join(config, 'run-with-secrets', 'credentials.yaml');
      const hint = `root made it (sudo without -H keeps your HOME): sudo chown -R 65534 ${config}, then run again`;
      for (const args of [['--vault-url', serverA.url, '-e', 'prod', '-k', 'A_ONE', '--', 'true'], ['whoami', '--vault-url', serverA.url]]) {
        const result = await execa(BIN, args, { uid: 65534, gid: 65534, reject: false, extendEnv: false, env: baseEnv(shared, { HOME: theirs }) });
        printed.push(result.stdout, result.stderr);
        expect([result.exitCode, result.stdout]).toEqual([125, '']);
        expect(result.stderr).toBe(`run-with-secrets: error RWS_CREDENTIAL_UNREADABLE: cannot use the stored logins ${store}: you (uid 65534) may not enter ${config} (EACCES: mode 700, owned by uid 0) (hint: ${hint})`);
      }
      // logout --all, the way out of a refused store, says the same where it failed with RWS_INTERNAL.
      mkdirSync(join(config, 'run-with-secrets'), { mode: 0o700 });
      writeFileSync(store, 'logins: []\n', { mode: 0o600 });
      chownSync(config, 65534, 65534);
      const ownDir = join(config, 'run-with-secrets');
      const logout = await execa(BIN, ['logout', '--all'], { uid: 65534, gid: 65534, reject: false, extendEnv: false, env: baseEnv(shared, { HOME: theirs }) });
      printed.push(logout.stdout, logout.stderr);
      expect([logout.exitCode, logout.stdout]).toEqual([125, '']);
      expect(logout.stderr).toBe(
        `run-with-secrets: error RWS_CREDENTIAL_UNREADABLE: cannot use the stored logins ${store}: you (uid 65534) may not enter ${ownDir} (EACCES: mode 700, owned by uid 0) (hint: root made it (sudo without -H keeps your HOME): sudo chown -R 65534 ${ownDir}, then run again)`,
      );
      expect(existsSync(store)).toBe(true);
    } finally {
      removeDir(shared);
    }
  });

  it('a named pipe at its place is refused at once, not waited on for a writer (also a fallback copy)', async () => {
    mkdirSync(join(home, '.config', 'run-with-secrets'), { recursive: true, mode: 0o700 });
    await execa('mkfifo', ['-m', '600', credentialsFile()]);
    // Killed after 5 s: an open(2) of a pipe waits for a writer for ever.
    const bounded = (args: string[], env: Record<string, string> = {}) => {
      const running = runBin(args, { runtimeDir, env: { HOME: home, ...env } });
      const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
      return running.finally(() => clearTimeout(timer));
    };
    for (const args of [['whoami', '--vault-url', serverA.url], ['--vault-url', serverA.url, '-e', 'prod', '--', 'true']]) {
      const result = await bounded(args);
      expect(result.exitCode, args.join(' ')).toBe(125);
      expect(result.stderr).toContain(`error RWS_CREDENTIAL_STORE_INVALID: refusing the stored logins ${credentialsFile()}: it is not a regular file`);
    }
    const copy = join(runtimeDir, 'copy.bin');
    await execa('mkfifo', ['-m', '600', copy]);
    const offline = await bounded(['--vault-url', serverA.url, '-e', 'prod', `--fallback=${copy}`, '--offline', '--', 'true'], { RWS_API_KEY: keyA.key });
    expect(offline.exitCode).toBe(125);
    expect(offline.stderr).toContain(`error RWS_FALLBACK_UNSAFE: the fallback cache ${copy} is refused: it is not a regular file`);
  }, 30_000);

  it('is not even read when another credential is set or no vault is used (the store loads only when needed)', async () => {
    mkdirSync(join(home, '.config', 'run-with-secrets'), { recursive: true });
    writeFileSync(credentialsFile(), 'not: [what we write', { mode: 0o644 });
    const withEnv = await printEnv(serverA.url, ['-k', 'A_ONE'], { RWS_API_KEY: keyA.key });
    expect(withEnv.exitCode, withEnv.stderr).toBe(0);
    expect(withEnv.stderr).toBe('');
    const envFile = join(runtimeDir, 'local.env');
    writeFileSync(envFile, 'LOCAL=1\n', { mode: 0o600 });
    const local = await rws(['--env-file', envFile, '--', 'true'], { env: { RWS_VAULT_URL: serverA.url } });
    expect([local.exitCode, local.stderr]).toEqual([0, '']);
  });
});

describe('the prompt on a terminal', () => {
  /** Runs `login` on a real pty; `type` is written to the terminal once the prompt is shown. */
  async function loginOnPty(type: string, after = '') {
    const inner = `"${BIN}" login --vault-url ${serverA.url}; echo "login-status=$?"; stty -a | grep -o -- ' -\\?echo ' | head -1 | sed 's/^/echo-mode=/'${after}`;
    const session = execa('script', ['-qfec', inner, '/dev/null'], { reject: false, extendEnv: false, env: baseEnv(runtimeDir, { HOME: home, TERM: 'dumb', SHELL: '/bin/bash' }), stdin: 'pipe' });
    await waitForLine(session.stdout!, 'API key for ');
    session.stdin!.write(type);
    const result = await session;
    printed.push(result.stdout);
    return result.stdout;
  }

  it('does not echo the key, and stores it', async () => {
    const screen = await loginOnPty(`${keyA.key}\r`);
    expect(screen).toContain(`API key for ${serverA.url} (profile default): `);
    expect(screen).toContain(`logged in to ${serverA.url} as test (${keyA.id})`);
    expect(screen).toContain('login-status=0');
    expect(screen).not.toContain(keyA.key);
    expect(screen).not.toContain(keyA.key.slice(7, 15));
    // The terminal echoes again afterwards.
    expect(screen).toContain('echo-mode= echo ');
    expect(readFileSync(credentialsFile(), 'utf8')).toContain(keyA.key);
  });

  it('Ctrl-C aborts, restores the terminal and stores nothing', async () => {
    const screen = await loginOnPty(`${keyA.key.slice(0, 12)}\x03`);
    expect(screen).toContain('RWS_LOGIN_CANCELLED');
    expect(screen).toContain('login-status=130');
    expect(screen).toContain('echo-mode= echo ');
    expect(screen).not.toContain(keyA.key.slice(0, 12));
    expect(existsSync(credentialsFile())).toBe(false);
  });
});
