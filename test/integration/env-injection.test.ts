import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fixture, makeRuntimeDir, makeSharedDir, removeDir, runBin, writeEnvFile } from '../helpers/cli.js';

let dir: string;
beforeEach(() => {
  dir = makeRuntimeDir();
});
afterEach(() => removeDir(dir));

const printEnv = fixture('print-env.mjs');

describe('env injection and the trimmed environment', () => {
  it('injects the secrets and only allowlisted parent variables; RWS_* and unrelated ones never pass', async () => {
    const envFile = writeEnvFile(dir, '.env', 'DB_URL=postgres://u:p@h/db\nAPI_TOKEN="s3cr3t value"\n');
    const result = await runBin(['--env-file', envFile, '--', printEnv], {
      runtimeDir: dir,
      env: { RWS_API_KEY: 'rws_sk_0123456789abcdef0123456789abcdef', RWS_TOKEN: 'tok', UNRELATED: 'x', AWS_SECRET_ACCESS_KEY: 'aws', LC_ALL: 'C', TZ: 'UTC', TERM: 'xterm' },
    });
    expect(result.exitCode).toBe(0);
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env.DB_URL).toBe('postgres://u:p@h/db');
    expect(env.API_TOKEN).toBe('s3cr3t value');
    expect(env.LC_ALL).toBe('C');
    expect(env.TZ).toBe('UTC');
    expect(env.TERM).toBe('xterm');
    expect(env.HOME).toBeDefined();
    for (const name of ['RWS_API_KEY', 'RWS_TOKEN', 'UNRELATED', 'AWS_SECRET_ACCESS_KEY']) expect(env).not.toHaveProperty(name);
    expect(result.stderr).toBe('');
  });

  it('--keep-env passes named and globbed variables but never RWS_*', async () => {
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const result = await runBin(['--env-file', envFile, '--keep-env', 'AWS_*', '--keep-env', 'EXTRA', '--keep-env', 'RWS_*', '--', printEnv], {
      runtimeDir: dir,
      env: { AWS_REGION: 'eu', AWS_PROFILE: 'p', EXTRA: 'e', RWS_API_KEY: 'secret', OTHER: 'o' },
    });
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env).toMatchObject({ A: '1', AWS_REGION: 'eu', AWS_PROFILE: 'p', EXTRA: 'e' });
    expect(env).not.toHaveProperty('RWS_API_KEY');
    expect(env).not.toHaveProperty('OTHER');
  });

  it('--pristine inherits nothing but PATH', async () => {
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const result = await runBin(['--env-file', envFile, '--pristine', '--', printEnv], { runtimeDir: dir, env: { TZ: 'UTC' } });
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(Object.keys(env).sort()).toEqual(['A', 'PATH']);
  });

  it('a secret wins over a kept variable of the same name, and --verbose says so by name only', async () => {
    const envFile = writeEnvFile(dir, '.env', 'TZ=Europe/Paris\n');
    const result = await runBin(['--env-file', envFile, '--allow-name', 'TZ', '-v', '--', printEnv], { runtimeDir: dir, env: { TZ: 'UTC' } });
    expect(JSON.parse(result.stdout).TZ).toBe('Europe/Paris');
    expect(result.stderr).toContain('TZ: the injected variable replaces the inherited one');
    expect(result.stderr).not.toContain('Europe/Paris');
  });

  it('later --env-file files override earlier ones; -k and --key select', async () => {
    const first = writeEnvFile(dir, 'a.env', 'SERVICE_A_KEY=a1\nSERVICE_B_KEY=b1\nSERVICE_B_URL=u1\nOTHER=o\n');
    const second = writeEnvFile(dir, 'b.env', 'SERVICE_B_KEY=b2\n');
    const result = await runBin(['--env-file', first, '--env-file', second, '-k', 'SERVICE_B_*', '--key', 'OTHER', '--', printEnv], { runtimeDir: dir });
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env).toMatchObject({ SERVICE_B_KEY: 'b2', SERVICE_B_URL: 'u1', OTHER: 'o' });
    expect(env).not.toHaveProperty('SERVICE_A_KEY');
  });

  it('patterns are anchored and case-sensitive; ? is one character', async () => {
    const envFile = writeEnvFile(dir, '.env', 'KEY1=1\nKEY12=12\nkey1=low\nXKEY1=x\n');
    const result = await runBin(['--env-file', envFile, '-k', 'KEY?', '--', printEnv], { runtimeDir: dir });
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env.KEY1).toBe('1');
    for (const name of ['KEY12', 'key1', 'XKEY1']) expect(env).not.toHaveProperty(name);
  });

  it('a -k pattern that matches no key is an error naming it (125), in a run and a dry run; --allow-empty allows it', async () => {
    const envFile = writeEnvFile(dir, '.env', 'DB_USER=u\nDB_PASS=p\n');
    for (const extra of [[], ['--dry-run']]) {
      const result = await runBin(['--env-file', envFile, '-k', 'DB_*', '-k', 'DB_XX*', ...extra, '--', printEnv], { runtimeDir: dir });
      expect(result.exitCode).toBe(125);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('run-with-secrets: error RWS_SECRET_MISSING: key pattern DB_XX* matches no key of the sources (hint: check the pattern (--dry-run without -k lists the names), or pass --allow-empty if an empty selection is expected)');
    }
    const allowed = await runBin(['--env-file', envFile, '-k', 'DB_XX*', '--allow-empty', '--', printEnv], { runtimeDir: dir });
    expect(allowed.exitCode, allowed.stderr).toBe(0);
    expect(Object.keys(JSON.parse(allowed.stdout) as object).filter((name) => name.startsWith('DB_'))).toEqual([]);
  });

  it('a --key that does not exist is an error naming it (125), and nothing runs', async () => {
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const result = await runBin(['--env-file', envFile, '--key', 'MISSING_ONE', '--', printEnv], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/RWS_SECRET_MISSING: .*MISSING_ONE/);
  });

  it.each([
    ['LD_PRELOAD=/tmp/x.so', 'LD_PRELOAD'],
    ['NODE_OPTIONS=--require /tmp/x.js', 'NODE_OPTIONS'],
    ['PATH=/tmp/evil', 'PATH'],
    ['BASH_ENV=/tmp/x', 'BASH_ENV'],
    ['ld_preload=/tmp/x.so', 'ld_preload'],
    ['http_proxy=http://evil', 'http_proxy'],
  ])('refuses the protected name in %s unless --allow-name', async (line, name) => {
    const envFile = writeEnvFile(dir, '.env', `${line}\n`);
    const refused = await runBin(['--env-file', envFile, '--', printEnv], { runtimeDir: dir });
    expect(refused.exitCode).toBe(125);
    expect(refused.stderr).toContain('RWS_NAME_PROTECTED');
    expect(refused.stderr).toContain(`--allow-name ${name}`);
    expect(refused.stderr).not.toContain('/tmp/');
    // /usr/bin/env by absolute path: the allowed PATH or NODE_OPTIONS must not break the check itself.
    const allowed = await runBin(['--env-file', envFile, '--allow-name', name, '--', '/usr/bin/env'], { runtimeDir: dir });
    expect(allowed.exitCode).toBe(0);
    expect(allowed.stdout.split('\n')).toContain(line);
  });

  it('refuses names that are not variable names, and RWS_* secrets', async () => {
    const dotted = writeEnvFile(dir, 'dotted.env', 'MY.NAME=1\n');
    const result = await runBin(['--env-file', dotted, '--', printEnv], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain('RWS_NAME_INVALID');
    const own = writeEnvFile(dir, 'own.env', 'RWS_API_KEY=x\n');
    const ownResult = await runBin(['--env-file', own, '--allow-name', 'RWS_API_KEY', '--', printEnv], { runtimeDir: dir });
    expect(ownResult.exitCode).toBe(125);
    expect(ownResult.stderr).toContain('RWS_NAME_PROTECTED');
  });

  it('a value too large for an environment is the wrapper\'s failure (125) with the way out, not 126', async () => {
    // Linux refuses any one variable over 128 KiB (MAX_ARG_STRLEN) at exec: a CA bundle is larger.
    const big = 'B'.repeat(140_000);
    const envFile = writeEnvFile(dir, 'big.env', `CA_BUNDLE=${big}\n`);
    const result = await runBin(['--env-file', envFile, '--', printEnv], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/error RWS_ENV_TOO_LARGE: .*E2BIG.*\(hint: use --inject-as file or --inject-as fd/);
    expect(result.stderr).not.toContain('BBBB');
    const file = await runBin(['--env-file', envFile, '--inject-as', 'file', '--', 'sh', '-c', 'wc -c < "$SECRETS_FILE"'], { runtimeDir: dir });
    expect(file.exitCode).toBe(0);
    expect(Number(file.stdout)).toBe(`CA_BUNDLE='${big}'\n`.length);
  });

  it('a secret named __proto__ is an ordinary variable', async () => {
    const envFile = writeEnvFile(dir, '.env', 'constructor=c\nA=1\n');
    const result = await runBin(['--env-file', envFile, '--', printEnv], { runtimeDir: dir });
    expect(JSON.parse(result.stdout)).toMatchObject({ constructor: 'c', A: '1' });
  });

  it('--dry-run prints names, never values, and starts nothing', async () => {
    const envFile = writeEnvFile(dir, '.env', 'A=value-one\nB=value-two\n');
    const marker = `${dir}/started`;
    const result = await runBin(['--env-file', envFile, '--dry-run', '--', 'touch', marker], { runtimeDir: dir, env: { UNRELATED: 'u' } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('would inject 2 secret(s) as env: A, B');
    expect(result.stdout).toMatch(/environment would hold \d+ variable\(s\): A, B, HOME/);
    expect(result.stdout).not.toContain('value-');
    expect(result.stdout).not.toContain('UNRELATED');
    expect(result.stdout).toContain(`would run: touch ${marker}`);
    const quoted = await runBin(['--env-file', envFile, '--dry-run', '--', 'node', '-e', "console.log('it\\'s')", 'a b', ''], { runtimeDir: dir });
    expect(quoted.stdout).toContain(`would run: node -e 'console.log('\\''it\\'\\''s'\\'')' 'a b' ''`);
    const json = await runBin(['--env-file', envFile, '--dry-run', '--inject-as', 'file', '--log-format', 'json'], { runtimeDir: dir });
    const described = JSON.parse(json.stdout) as { secrets: string[]; environment: string[] };
    expect(described.secrets).toEqual(['A', 'B']);
    expect(described.environment).toContain('SECRETS_FILE');
    expect(described.environment).not.toContain('A');
    const { existsSync } = await import('node:fs');
    expect(existsSync(marker)).toBe(false);
  });

  it('a missing, unreadable or directory --env-file is an error naming the file', async () => {
    const missing = await runBin(['--env-file', `${dir}/nope.env`, '--', printEnv], { runtimeDir: dir });
    expect(missing.exitCode).toBe(125);
    expect(missing.stderr).toMatch(/RWS_SOURCE_UNREADABLE: cannot read .*nope\.env: no such file/);
    const asDir = await runBin(['--env-file', dir, '--', printEnv], { runtimeDir: dir });
    expect(asDir.exitCode).toBe(125);
    expect(asDir.stderr).toContain('RWS_SOURCE_UNREADABLE');
  });

  it('a .env that other users can reach only warns, naming the file and not the values', async () => {
    const shared = makeSharedDir();
    try {
      const envFile = writeEnvFile(shared, 'shared.env', 'A=visible-value\n', 0o644);
      const result = await runBin(['--env-file', envFile, '--', printEnv], { runtimeDir: dir });
      expect(result.exitCode).toBe(0);
      expect(result.stderr).toMatch(/warning RWS_SOURCE_PERMISSIONS: .*shared\.env is readable by other users \(mode 644, and its directories let them through\)/);
      expect(result.stderr).not.toContain('visible-value');
      const quiet = await runBin(['--env-file', envFile, '-q', '--', printEnv], { runtimeDir: dir });
      expect(quiet.stderr).toBe('');
      // Group-readable only, in directories the group can pass: a warning naming the group.
      const groupOnly = writeEnvFile(shared, 'group.env', 'A=1\n', 0o640);
      chmodSync(shared, 0o750);
      const group = await runBin(['--env-file', groupOnly, '--', 'true'], { runtimeDir: dir });
      expect(group.stderr).toMatch(/RWS_SOURCE_PERMISSIONS: .*group\.env is readable by its group/);
    } finally {
      removeDir(shared);
    }
  });

  it('a line dotenv skips or cuts short is read as dotenv reads it, and named by number in a warning that never quotes it', async () => {
    const text = [
      'GOOD=kept',
      'MY KEY=skipped-value-1', // a space in the name: dotenv skips the line
      'CUT=p#ss-tail-2', // cut at the #
      'GOOD=second-3', // set again: the last one wins
      '# a comment',
      'OPEN="never-closed-4',
      '',
    ].join('\n');
    const envFile = writeEnvFile(dir, '.env', text);
    const result = await runBin(['--env-file', envFile, '--', printEnv], { runtimeDir: dir });
    expect(result.exitCode).toBe(0);
    const env = JSON.parse(result.stdout) as Record<string, string>;
    // Exactly what the dotenv package gives, as the developer's own app would read the file.
    expect({ GOOD: env.GOOD, CUT: env.CUT, MY: env.MY, KEY: env.KEY }).toEqual({ GOOD: 'second-3', CUT: 'p', MY: undefined, KEY: undefined });
    const warnings = result.stderr.trim().split('\n');
    expect(warnings).toEqual([
      expect.stringMatching(/warning RWS_ENV_FILE_LINE: line 2 of .*\.env is not NAME=value/),
      expect.stringMatching(/warning RWS_ENV_FILE_LINE: line 3 of .*\.env has a # inside an unquoted value/),
      expect.stringMatching(/warning RWS_ENV_FILE_LINE: line 4 of .*\.env sets GOOD again \(first set on line 1\)/),
      expect.stringMatching(/warning RWS_ENV_FILE_LINE: line 6 of .*\.env opens a quoted value that is never closed/),
    ]);
    expect(result.stderr).not.toMatch(/skipped-value|tail-2|second-3|never-closed|kept/);
    // Past five, one line says there are more.
    const many = writeEnvFile(dir, 'many.env', Array.from({ length: 9 }, (_, i) => `BAD NAME${i}=x`).join('\n'));
    const flood = await runBin(['--env-file', many, '--', 'true'], { runtimeDir: dir });
    expect(flood.exitCode).toBe(0);
    expect(flood.stderr.trim().split('\n')).toHaveLength(6);
    expect(flood.stderr).toContain('many.env has more lines that dotenv skips or misreads after line 5');
    // -q keeps warnings out, as it does for the others.
    expect((await runBin(['--env-file', envFile, '-q', '--', 'true'], { runtimeDir: dir })).stderr).toBe('');
  });

  it('a 644 .env behind a private directory (a 700 home or checkout) warns only with -v', async () => {
    const envFile = writeEnvFile(dir, 'checkout.env', 'A=1\n', 0o644);
    const plain = await runBin(['--env-file', envFile, '--', 'true'], { runtimeDir: dir });
    expect(plain.exitCode).toBe(0);
    expect(plain.stderr).toBe('');
    const verbose = await runBin(['--env-file', envFile, '-v', '--', 'true'], { runtimeDir: dir });
    expect(verbose.stderr).toContain('checkout.env has mode 644, but its directories keep group and others out');
    expect(verbose.stderr).not.toContain('RWS_SOURCE_PERMISSIONS');
  });

  it('--log-format json writes one JSON object per line on stderr', async () => {
    const shared = makeSharedDir();
    const envFile = writeEnvFile(shared, '.env', 'A=1\n', 0o644);
    const result = await runBin(['--env-file', envFile, '--log-format', 'json', '--key', 'NOPE', '--', printEnv], { runtimeDir: dir });
    removeDir(shared);
    const lines = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as Record<string, string>);
    expect(lines.map((line) => line.level)).toEqual(['warn', 'error']);
    expect(lines[1]).toMatchObject({ code: 'RWS_SECRET_MISSING', program: 'run-with-secrets' });
  });

  it('reads a .env from a pipe (process substitution)', async () => {
    const { execa } = await import('execa');
    const { BIN, baseEnv } = await import('../helpers/cli.js');
    const result = await execa('bash', ['-c', `"${BIN}" --env-file <(printf 'PIPED=yes\\n') -- "${printEnv}"`], { reject: false, extendEnv: false, stdin: 'ignore', env: baseEnv(dir) });
    expect(JSON.parse(result.stdout).PIPED).toBe('yes');
  });
});

describe('closed pipes', () => {
  it('a reader that goes away early (| head) is not a crash', async () => {
    const { execa } = await import('execa');
    const { BIN, baseEnv } = await import('../helpers/cli.js');
    const envFile = writeEnvFile(dir, 'many.env', Array.from({ length: 20_000 }, (_, i) => `KEY_${i}=v`).join('\n'));
    const script = `"${BIN}" --env-file "${envFile}" --dry-run 2>"${dir}/err" | head -c 10 >/dev/null; echo "status=\${PIPESTATUS[0]}"; cat "${dir}/err"`;
    const result = await execa('bash', ['-c', script], { reject: false, extendEnv: false, stdin: 'ignore', env: baseEnv(dir) });
    expect(result.stdout.trim()).toBe('status=0');
  });
});

describe('command line', () => {
  it('--help shows usage and examples; --version prints the version', async () => {
    const help = await runBin(['--help'], { runtimeDir: dir });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain('run-with-secrets [options] -- <command> [args...]');
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('--inject-as');
    expect(help.stdout).toMatch(/--mask[\s\S]*no terminal/);
    const version = await runBin(['--version'], { runtimeDir: dir });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a pattern from the config file that matches nothing names the config file, not a -k that was never given', async () => {
    const config = writeEnvFile(dir, 'config.yaml', "vault_url: https://vault.internal:8200\nkey_patterns: ['APP_*']\n");
    const envFile = writeEnvFile(dir, '.env', 'DATABASE_URL=x\n');
    for (const args of [['--', 'true'], ['--dry-run']]) {
      const result = await runBin(['--config', config, '--env-file', envFile, ...args], { runtimeDir: dir });
      expect(result.exitCode).toBe(125);
      expect(result.stderr).toBe(
        `run-with-secrets: error RWS_SECRET_MISSING: key pattern APP_* (key_patterns in ${config}) matches no key of the sources (hint: check key_patterns in ${config}, or choose for this run with -k or --key; --allow-empty if an empty selection is expected)`,
      );
    }
    const flag = await runBin(['--config', config, '--env-file', envFile, '-k', 'DATABASE_*', '--', 'true'], { runtimeDir: dir });
    expect(flag.exitCode).toBe(0);
  });

  it('a .env that is not UTF-8 is said to be the content, not the path, with what to do', async () => {
    const latin1 = path.join(dir, 'latin1.env');
    writeFileSync(latin1, Buffer.from('A=caf\xe9\n', 'latin1'), { mode: 0o600 });
    const result = await runBin(['--env-file', latin1, '--', 'true'], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/^run-with-secrets: error RWS_SOURCE_INVALID: cannot read \S+latin1\.env: not valid UTF-8 \(hint: save it as UTF-8 \(iconv -t UTF-8\); give a binary secret in base64\)$/);
  });

  it('a config file with a YAML tag it does not know fails in one line, with no YAMLWarning block', async () => {
    const config = writeEnvFile(dir, 'config.yaml', 'vault_url: !!js/function "x"\n');
    const result = await runBin(['--config', config, '--env-file', writeEnvFile(dir, '.env', 'A=1\n'), '--', 'true'], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/^run-with-secrets: error RWS_CONFIG_INVALID: \S+config\.yaml is not valid YAML: Unresolved tag/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('--help lists every exit status the README table does, login\'s 130 included', async () => {
    const help = (await runBin(['--help'], { runtimeDir: dir })).stdout.replace(/\s+/g, ' ');
    for (const status of ['125', '126', '127', '128+N', '75', '77', '130']) expect(help).toMatch(new RegExp(`Exit status:.*[ (]${status.replace('+', '\\+')} `));
  });

  it('with no arguments at all, prints the usage on stderr and exits 125, stdout untouched', async () => {
    const result = await runBin([], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Usage: run-with-secrets [options] -- <command> [args...]');
    expect(result.stderr).toContain('Examples:');
    expect(result.stderr.trim().split('\n').at(-1)).toBe('run-with-secrets: error RWS_USAGE: no command given (hint: run-with-secrets [options] -- <command> [args...])');
  });

  it.each([
    ['keys', ['-e, --environment', '--vault-url', '-k, --key-pattern', '--log-format']],
    ['check', ['-e, --environment', '--ca-file', '--timeout']],
    ['token', ['--usage-limit', '--ttl', '-k, --key-pattern']],
  ])('%s --help lists its own options, none of the run options', async (command, own) => {
    const help = await runBin([command, '--help'], { runtimeDir: dir });
    expect(help.exitCode).toBe(0);
    for (const option of own) expect(help.stdout).toContain(option);
    for (const runOption of ['--env-file', '--inject-as', '--mask', '--keep-env', '--dry-run', '--kill-after', '--file-format']) expect(help.stdout).not.toContain(runOption);
    expect(help.stdout.split('\n').length).toBeLessThan(50);
  });

  it.each([
    ['token', /-k, --key-pattern +The one glob of names the token may read/],
    ['keys', /-k, --key-pattern +Only list names matching this glob/],
    ['check', /-k, --key-pattern +Check the selection of a run with this -k/],
    ['fallback', /--fallback +Only as --fallback=PATH: remove the copy at PATH/],
  ])('%s --help says what its option does there, not what it does for a run', async (command, own) => {
    const help = await runBin([command, '--help'], { runtimeDir: dir });
    expect(help.stdout).toMatch(own);
    expect(help.stdout).not.toContain('Only inject keys');
    expect(help.stdout).not.toContain('Keep an encrypted copy');
  });

  it.each(['token', 'keys', 'check', 'login', 'logout', 'fallback', 'whoami', 'completion'])('%s --help shows examples', async (command) => {
    const help = await runBin([command, '--help'], { runtimeDir: dir });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`Examples:\\n +(\\(umask 077; |source <\\()?run-with-secrets ${command}`));
  });

  it.each([
    [['token'], 'Not enough non-option arguments', 'token'],
    [['token', 'generate', '-e', 'prod', '--usage-limit', '0'], '--usage-limit expects a whole number', 'token'],
    [['keys', '-e', 'prod', '--bogus'], 'Unknown argument: bogus', 'keys'],
    [['fallback'], 'Not enough non-option arguments', 'fallback'],
    [['--bogus', '--', 'true'], 'Unknown argument: bogus', ''],
  ])('a usage error of %j names the help page of its command', async (args, message, page) => {
    const result = await runBin(args, { runtimeDir: dir, env: { RWS_VAULT_URL: 'http://127.0.0.1:9', RWS_API_KEY: 'rws_sk_0123456789abcdef0123456789abcdef' } });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain(`error RWS_USAGE: ${message}`);
    expect(result.stderr).toMatch(new RegExp(`\\(hint: see run-with-secrets ${page ? `${page} ` : ''}--help\\)$`));
  });

  it('a bad RWS_TIMEOUT or RWS_RETRIES is named as the variable, not as a flag the command line does not hold', async () => {
    const env = { RWS_VAULT_URL: 'http://127.0.0.1:9', RWS_API_KEY: 'rws_sk_0123456789abcdef0123456789abcdef' };
    const timeout = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir: dir, env: { ...env, RWS_TIMEOUT: '30s' } });
    expect(timeout.exitCode).toBe(125);
    expect(timeout.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: RWS_TIMEOUT expects a number of seconds [^\n]*, got "30s" \(hint: [^\n]+\)$/);
    const retries = await runBin(['-e', 'prod', '--', 'true'], { runtimeDir: dir, env: { ...env, RWS_RETRIES: 'x' } });
    expect(retries.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: RWS_RETRIES expects a whole number/);
    const flag = await runBin(['-e', 'prod', '--timeout', '30s', '--', 'true'], { runtimeDir: dir, env: { ...env, RWS_TIMEOUT: '5' } });
    expect(flag.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: --timeout expects/);
  });

  it('--kill-after 0 is refused with the range it must be in, which the message said 0 was in', async () => {
    const result = await runBin(['--env-file', writeEnvFile(dir, '.env', 'A=1\n'), '--kill-after', '0', '--', 'true'], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toBe('run-with-secrets: error RWS_USAGE: --kill-after expects a number of seconds over 0 and at most 86400 (such as 30 or 2.5), got "0" (hint: see run-with-secrets --help)');
  });

  it('--ttl and --subject are checked with local files too, so a config tried locally fails as the vault run would', async () => {
    const envFile = writeEnvFile(dir, '.env', 'A=1\n');
    const ttl = await runBin(['--env-file', envFile, '--ttl', '0', '--', 'true'], { runtimeDir: dir });
    expect(ttl.exitCode).toBe(125);
    expect(ttl.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: --ttl expects [^\n]+, got "0"[^\n]*$/);
    const subject = await runBin(['--env-file', envFile, '--subject', 'a\u0007b', '--', 'true'], { runtimeDir: dir });
    expect(subject.exitCode).toBe(125);
    expect(subject.stderr).toMatch(/^run-with-secrets: error RWS_USAGE: --subject must be 1 to 256 characters without control characters/);
    expect((await runBin(['--env-file', envFile, '--ttl', '30', '--subject', 'nightly', '--', 'true'], { runtimeDir: dir })).exitCode).toBe(0);
  });

  it('the token example writes the token to a file RWS_TOKEN_FILE accepts (0600)', async () => {
    const help = await runBin(['token', '--help'], { runtimeDir: dir });
    // `> token` alone makes a 0644 file under the usual umask, which `token revoke` then refuses.
    // (yargs wraps the example around its description: only the parts are checked)
    expect(help.stdout).toContain('(umask 077; run-with-secrets token generate');
    expect(help.stdout).toMatch(/^ +token\) *$/m);
  });

  it.each([
    [['--bogus', '--', 'true'], /RWS_USAGE: Unknown argument: bogus/],
    [['--env-file', 'x'], /RWS_USAGE: no command given/],
    [['--', 'true'], /RWS_USAGE: no source of secrets given/],
    [['--env-file', 'x', '--inject-as', 'disk', '--', 'true'], /RWS_USAGE: .*inject-as/],
    [['--env-file', 'x', '-k', 'A.*', '--', 'true'], /RWS_USAGE: --key-pattern "A\.\*" is not a valid pattern/],
    [['--env-file', 'x', '--kill-after', '-1', '--', 'true'], /RWS_USAGE/],
    [['--env-file', 'x', '--file-var', 'LD_PRELOAD', '--', 'true'], /RWS_USAGE: --file-var/],
    [['--env-file', 'x', 'node', 'app.js'], /RWS_USAGE: unknown command "node"; put -- before/],
    [['-e', 'prod', '--fallback', '/tmp/fb', '--', 'true'], /RWS_USAGE: unknown command "\/tmp\/fb"; put -- before the program to run \(hint: --fallback takes a path only as --fallback=PATH;/],
    [['--env-file'], /RWS_USAGE/],
    [['token', 'frob'], /RWS_USAGE: Invalid values: Argument: action, Given: "frob", Choices: "generate", "revoke"/],
    [['token', 'generate', 'extra'], /RWS_USAGE: unexpected argument "extra" for token/],
    [['keys', 'extra'], /RWS_USAGE: unexpected argument "extra" for keys/],
  ])('bad flags %j exit 125 with one line', async (args, message) => {
    const result = await runBin(args, { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.each([
    [['rws_sk_0123456789abcdef0123456789abcdef', '--', 'true']],
    [['--env-file', 'x', 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl', '--', 'true']],
    [['token', 'rws_sk_0123456789abcdef0123456789abcdef']],
    [['--log-format', 'json', '--env-file', 'x', 'rws_sk_0123456789abcdef0123456789abcdef', '--', 'true']],
  ])('a key or token typed where a word was expected is not quoted back: %j', async (args) => {
    const result = await runBin(args, { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toMatch(/RWS_USAGE.*(rws_sk_\[redacted\]|eyJ\[redacted token\])/);
    expect(result.stderr).not.toMatch(/0123456789abcdef|c2lnbmF0dXJl/);
  });

  it('Node does not act on our --env-file (the shebang ends Node options)', async () => {
    const result = await runBin(['--env-file', `${dir}/missing.env`, '--', 'true'], { runtimeDir: dir });
    expect(result.exitCode).toBe(125);
    expect(result.stderr).toContain('RWS_SOURCE_UNREADABLE');
  });
});
