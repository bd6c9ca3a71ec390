// --user: the child runs as another account, so it cannot read the wrapper's credential from
// /proc/PPID/environ. Needs root to start a process as someone else: CI runs as root. `nobody`
// is in every Debian base system.
import { execa } from 'execa';
import { chmodSync, readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, baseEnv, makeRuntimeDir, makeSharedDir, removeDir, runBin, wrapperDirs, writeEnvFile } from '../helpers/cli.js';

const asRoot = process.getuid?.() === 0;
const API_KEY = `rws_sk_${'ab'.repeat(16)}`;
let dir: string;
let envFile: string;
beforeEach(() => {
  dir = makeRuntimeDir();
  envFile = writeEnvFile(dir, '.env', 'DB_PASS=s3cret-value\n');
});
afterEach(() => removeDir(dir));

const NOBODY_UID = (): string => readFileSync('/etc/passwd', 'utf8').split('\n').find((line) => line.startsWith('nobody:'))!.split(':')[2]!;

describe.skipIf(!asRoot)('--user (as root)', () => {
  it('runs the child as that user, with its HOME/USER, and the wrapper environ out of its reach', async () => {
    const script = 'id -u; echo "$DB_PASS $USER"; cat /proc/$PPID/environ >/dev/null 2>&1 && echo environ-readable || echo environ-denied';
    const result = await runBin(['--env-file', envFile, '--user', 'nobody', '--', 'sh', '-c', script], { runtimeDir: dir, env: { RWS_API_KEY: API_KEY } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout.split('\n')).toEqual([NOBODY_UID(), 's3cret-value nobody', 'environ-denied']);
    // Without --user, the same child as the same user reads the key: the security model's point.
    const same = await runBin(['--env-file', envFile, '--', 'sh', '-c', 'tr "\\0" "\\n" < /proc/$PPID/environ | grep -c "^RWS_API_KEY="'], { runtimeDir: dir, env: { RWS_API_KEY: API_KEY } });
    expect(same.stdout).toBe('1');
  });

  it.each(['file', 'fd'])('hands the secrets file over in %s mode (0600, the user\'s), and removes it after', async (mode) => {
    const result = await runBin(['--env-file', envFile, '--user', 'nobody:nogroup', '--inject-as', mode, '--', 'sh', '-c', 'id -g; cat "$SECRETS_FILE"'], { runtimeDir: dir });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain("DB_PASS='s3cret-value'");
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('--dry-run says which user the child would run as, and its HOME/USER/LOGNAME', async () => {
    const text = await runBin(['--env-file', envFile, '--user', 'nobody', '--dry-run', '--', 'sh', '-c', 'id -u'], { runtimeDir: dir });
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain(`would run: sh -c 'id -u' as nobody (uid ${NOBODY_UID()}, gid `);
    expect(text.stdout).toMatch(/would hold \d+ variable\(s\): .*\bLOGNAME\b.*\bUSER\b/);
    const json = await runBin(['--env-file', envFile, '--user', 'nobody', '--dry-run', '--log-format', 'json', '--', 'true'], { runtimeDir: dir });
    const parsed = JSON.parse(json.stdout) as { user: { name: string; uid: number }; environment: string[] };
    expect(parsed.user).toMatchObject({ name: 'nobody', uid: Number(NOBODY_UID()) });
    expect(parsed.environment).toEqual(expect.arrayContaining(['HOME', 'LOGNAME', 'USER']));
    expect(wrapperDirs(dir)).toEqual([]);
  });

  it('--watch: every child, the restarted one too, runs as that user and reads its own new file; the wrapper environ stays out of reach', async () => {
    writeEnvFile(dir, '.env', 'DB_PASS=first-value\n');
    const script = 'echo "up $(id -u) $(cat "$SECRETS_FILE") $(cat /proc/$PPID/environ >/dev/null 2>&1 && echo environ-readable || echo environ-denied)"; exec sleep 60';
    const wrapper = execa(BIN, ['--env-file', envFile, '--watch', '--debounce', '0', '--user', 'nobody', '--inject-as', 'file', '--', 'sh', '-c', script], {
      reject: false,
      extendEnv: false,
      env: baseEnv(dir, { RWS_API_KEY: API_KEY }),
      stdin: 'ignore',
    });
    let stdout = '';
    wrapper.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const lines = (): string[] => stdout.split('\n').filter((line) => line.startsWith('up '));
    const waitFor = async (count: number): Promise<void> => {
      for (const start = Date.now(); lines().length < count; ) {
        if (Date.now() - start > 20_000) throw new Error(`no child number ${count}: ${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    await waitFor(1);
    writeEnvFile(dir, '.env', 'DB_PASS=second-value\n');
    await waitFor(2);
    wrapper.kill('SIGTERM');
    const result = await wrapper;
    expect(result.signal, result.stderr).toBe('SIGTERM');
    expect(lines()).toEqual([`up ${NOBODY_UID()} DB_PASS='first-value' environ-denied`, `up ${NOBODY_UID()} DB_PASS='second-value' environ-denied`]);
    expect(result.stderr).not.toMatch(/first-value|second-value/);
    expect(wrapperDirs(dir)).toEqual([]);
  }, 40_000);

  it('refuses an unknown user or group, before anything runs', async () => {
    const user = await runBin(['--env-file', envFile, '--user', 'no-such-user-rws', '--', 'true'], { runtimeDir: dir });
    expect(user.exitCode).toBe(125);
    expect(user.stderr).toContain('error RWS_USAGE: --user: no user "no-such-user-rws" in /etc/passwd');
    const group = await runBin(['--env-file', envFile, '--user', 'nobody:no-such-group-rws', '--', 'true'], { runtimeDir: dir });
    expect(group.stderr).toContain('error RWS_USAGE: --user: no group "no-such-group-rws" in /etc/group');
  });

  it('is refused when the wrapper does not run as root', async () => {
    const shared = makeSharedDir();
    try {
      const env = writeEnvFile(shared, 'nobody.env', 'A=1\n', 0o644);
      chmodSync(shared, 0o755);
      const result = await execa('setpriv', ['--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', BIN, '--env-file', env, '--user', 'nobody', '--', 'true'], {
        reject: false,
        extendEnv: false,
        env: baseEnv(shared, { HOME: shared }),
      });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toContain('error RWS_USAGE: --user needs run-with-secrets to run as root');
    } finally {
      removeDir(shared);
    }
  });
});
