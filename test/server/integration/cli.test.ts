// The admin commands, run as users run them: modes, stdin-only values, all-or-nothing imports,
// keys printed once and stored only as HMACs.
import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, cliOk, makeApiKey, makeStore, type TestStore } from '../helpers/server.js';

let store: TestStore;
beforeAll(async () => {
  store = await makeStore();
});
afterAll(async () => {
  await store?.cleanup();
});
const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe('init', () => {
  it('creates missing parents (privately), and fails with one clear line where it cannot', async () => {
    const nested = path.join(store.root, 'a', 'b', 'store');
    await cliOk(['init', '--store', nested]);
    expect(await mode(path.join(store.root, 'a'))).toBe(0o700);
    expect(await mode(nested)).toBe(0o700);
    // Node's own recursive mkdir never returns for this path.
    const impossible = await cli(['init', '--store', '/proc/no-such-dir/store']);
    expect(impossible.exitCode).toBe(1);
    expect(impossible.stderr).toMatch(/^secrets-server: error RWS_STORE_UNWRITABLE: cannot create the store \/proc\/no-such-dir\/store: ENOENT \(hint: [^\n]+\)\n$/);
  });

  it('creates a 0700 store with 0600 files, and keeps them when run again', async () => {
    expect(await mode(store.dir)).toBe(0o700);
    const files = (await readdir(store.dir)).sort();
    expect(files).toEqual(['age-identity.txt', 'api-key-pepper', 'jwt-secret', 'state.db']);
    for (const file of files) expect(await mode(path.join(store.dir, file))).toBe(0o600);
    const before = await readFile(path.join(store.dir, 'jwt-secret'), 'utf8');
    const again = await cliOk(['init', '--store', store.dir]);
    expect(again).toContain('kept JWT signing secret');
    expect(again).toContain(`export SOPS_AGE_KEY_FILE=${path.join(store.dir, 'age-identity.txt')}`);
    expect(await readFile(path.join(store.dir, 'jwt-secret'), 'utf8')).toBe(before);
    expect(again).not.toContain(before);
  });

  it('names a link or a file at the store path for what it is, instead of offering init to init', async () => {
    const real = path.join(store.root, 'real-store');
    await mkdir(real, { mode: 0o700 });
    const link = path.join(store.root, 'linked-store');
    await symlink(real, link);
    const linked = await cli(['init', '--store', link]);
    expect(linked.exitCode).toBe(1);
    expect(linked.stdout).toBe('');
    expect(linked.stderr).toBe(`secrets-server: error RWS_STORE_INVALID: store directory ${link} is a symbolic link, which secrets-server never follows (hint: give --store / VANTA_SOPS_FILES_PATH the real path (realpath ${link}))\n`);
    const file = path.join(store.root, 'a-file');
    await writeFile(file, '');
    for (const command of [['init'], ['serve', '--port', '0'], ['status']]) {
      const result = await cli([...command, '--store', file]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toBe(`secrets-server: error RWS_STORE_INVALID: store directory ${file} is not a directory (hint: check --store / VANTA_SOPS_FILES_PATH; a new store is made with secrets-server init --store NEW_DIR)\n`);
    }
  });

  it('refuses to keep files serve would refuse, before telling how to start the server', async () => {
    const kept = path.join(store.root, 'kept-store');
    await mkdir(kept, { mode: 0o700 });
    await writeFile(path.join(kept, 'jwt-secret'), 'a'.repeat(64), { mode: 0o644 });
    const open = await cli(['init', '--store', kept]);
    expect(open.exitCode).toBe(1);
    expect(open.stdout).not.toContain('Start the server');
    expect(open.stderr).toBe(`secrets-server: error RWS_STORE_INVALID: ${kept}/jwt-secret is readable by others (mode 644) (hint: chmod 600 ${kept}/jwt-secret)\n`);
    await writeFile(path.join(kept, 'jwt-secret'), 'short');
    await chmod(path.join(kept, 'jwt-secret'), 0o600);
    const weak = await cli(['init', '--store', kept]);
    expect(weak.exitCode).toBe(1);
    expect(weak.stdout).not.toContain('Start the server');
    expect(weak.stderr).toContain('RWS_JWT_SECRET_WEAK');
    await writeFile(path.join(kept, 'jwt-secret'), 'b'.repeat(64));
    expect(await cliOk(['init', '--store', kept])).toContain('kept JWT signing secret');
  });

  it('refuses a directory others can enter', async () => {
    const open = path.join(store.root, 'open');
    await mkdir(open);
    await chmod(open, 0o755);
    const result = await cli(['init', '--store', open]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('chmod 700');
  });
});

describe('a store path holding control characters', () => {
  /** An ANSI colour, a newline that fakes a line, the C1 CSI, a bidi override and U+2028. */
  const HOSTILE = 'store\u001b[31m\nFAKE: ok\u009b2J\u202e\u2028end';
  /** What a terminal must never be sent raw: controls (but each line's own newline), format characters, separators. */
  const UNSEEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
  const SHOWN = 'store\\u001b[31m\\u000aFAKE: ok\\u009b2J\\u202e\\u2028end';

  function expectEscaped(out: string, lines: number): void {
    expect(out.endsWith('\n')).toBe(true);
    const rows = out.slice(0, -1).split('\n');
    expect(rows).toHaveLength(lines);
    for (const row of rows) expect(row).not.toMatch(UNSEEN);
  }

  it('init, status, db status and db migrate print it escaped, and --json parses back to it, where its characters reached the terminal raw', async () => {
    const dir = path.join(store.root, HOSTILE);
    const made = await cliOk(['init', '--store', dir]);
    expectEscaped(made, 10);
    expect(made).toContain(`created store ${path.join(store.root, SHOWN)} (0700)`);
    expect(made).toContain(`created state database ${path.join(store.root, SHOWN, 'state.db')} (0600)`);
    // The export lines, pasted into a shell, give back the real path, whatever the locale.
    const exports = made.split('\n').filter((line) => line.startsWith('  export '));
    expect(exports).toHaveLength(2);
    const shell = execFileSync('bash', ['-c', `${exports.join('\n')}\nprintf '%s\\0%s' "$VANTA_SOPS_FILES_PATH" "$SOPS_AGE_KEY_FILE"`], { env: { PATH: process.env.PATH ?? '', LC_ALL: 'C' } });
    expect(shell.toString('utf8').split('\0')).toEqual([dir, path.join(dir, 'age-identity.txt')]);
    expectEscaped(await cliOk(['init', '--store', dir]), 10);

    const status = await cliOk(['status', '--store', dir]);
    expectEscaped(status, 2);
    expect(status).toContain(`store: ${path.join(store.root, SHOWN)}\n`);
    expectEscaped(await cliOk(['status'], { env: { VANTA_SOPS_FILES_PATH: dir } }), 2);
    const dbStatus = await cliOk(['db', 'status', '--store', dir]);
    expectEscaped(dbStatus, 2);
    expect(dbStatus).toContain(`state: sqlite ${path.join(store.root, SHOWN, 'state.db')}\n`);
    expectEscaped(await cliOk(['db', 'migrate', '--store', dir]), 1);
    // Not made yet: the line that says so.
    expectEscaped(await cliOk(['db', 'status', '--store', path.join(store.root, `none-${HOSTILE}`)]), 1);

    for (const args of [['status', '--json'], ['db', 'status', '--json']]) {
      const json = await cliOk([...args, '--store', dir]);
      expectEscaped(json, 1);
      const view = JSON.parse(json) as { store?: string; location?: string; state?: { location: string } };
      expect(view.store ?? dir).toBe(dir);
      expect(view.location ?? view.state?.location).toBe(path.join(dir, 'state.db'));
    }
    const none = JSON.parse(await cliOk(['db', 'status', '--json', '--store', path.join(store.root, `none-${HOSTILE}`)])) as { location: string };
    expect(none.location).toBe(path.join(store.root, `none-${HOSTILE}`, 'state.db'));
  });
});

describe('secret', () => {
  it('sets a value from stdin only, lists names and removes them', async () => {
    expect((await cliOk(['secret', 'set', 'dev', 'API_TOKEN', '--store', store.dir], { input: 'tok-value-123\n' })).trim()).toBe('set API_TOKEN in dev');
    const file = path.join(store.dir, 'dev.enc.yaml');
    expect(await mode(file)).toBe(0o600);
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('tok-value-123');
    expect(text).toMatch(/^API_TOKEN: ENC\[AES256_GCM,/m);
    await cliOk(['secret', 'set', 'dev', 'OTHER', '--store', store.dir], { input: 'x' });
    expect(await cliOk(['secret', 'list', 'dev', '--store', store.dir])).toBe('API_TOKEN\nOTHER\n');
    await cliOk(['secret', 'rm', 'dev', 'OTHER', '--store', store.dir]);
    expect(await cliOk(['secret', 'list', 'dev', '--store', store.dir])).toBe('API_TOKEN\n');
    const missing = await cli(['secret', 'rm', 'dev', 'OTHER', '--store', store.dir]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('RWS_SECRET_MISSING');
    expect(await readdir(store.dir)).not.toContain(expect.stringMatching(/\.tmp$|\.lock$/));
  });

  it('a mistyped environment in secret list or rm says where the environments are listed', async () => {
    await cliOk(['secret', 'set', 'production', 'DB_HOST', '--store', store.dir], { input: 'db1' });
    const list = await cli(['secret', 'list', 'prodution', '--store', store.dir]);
    expect(list.exitCode).toBe(1);
    expect(list.stderr).toBe(`secrets-server: error RWS_ENVIRONMENT_MISSING: no environment prodution in ${store.dir} (hint: secrets-server status lists the environments of the store)\n`);
    // `secret list prodution`, the hint of a missing name, would only fail again.
    const rm = await cli(['secret', 'rm', 'prodution', 'DB_HOST', '--store', store.dir]);
    expect(rm.exitCode).toBe(1);
    expect(rm.stderr).toBe('secrets-server: error RWS_SECRET_MISSING: environment prodution has no secret DB_HOST (hint: there is no environment prodution: secrets-server status lists the environments of the store)\n');
    expect(await cliOk(['status', '--store', store.dir])).toContain('environment production: sha256:');
  });

  it('refuses an empty stdin', async () => {
    const result = await cli(['secret', 'set', 'dev', 'EMPTY', '--store', store.dir], { input: '' });
    expect(result.exitCode).toBe(2);
    expect(await cliOk(['secret', 'list', 'dev', '--store', store.dir])).not.toContain('EMPTY');
  });

  it('refuses an extra argument rather than taking a value from the command line', async () => {
    const result = await cli(['secret', 'set', 'dev', 'API_TOKEN', 'the-value', '--store', store.dir]);
    expect(result.exitCode).toBe(2);
  });

  it('refuses invalid and protected names, and bad environment names', async () => {
    for (const [args, code] of [
      [['secret', 'set', 'dev', 'BAD-NAME'], 'RWS_NAME_INVALID'],
      [['secret', 'set', 'dev', 'LD_PRELOAD'], 'RWS_NAME_PROTECTED'],
      [['secret', 'set', '../dev', 'OK'], 'RWS_USAGE'],
      [['secret', 'set', 'tokens', 'OK'], 'RWS_USAGE'],
    ] as const) {
      const result = await cli([...args, '--store', store.dir], { input: 'v' });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toContain(code);
    }
    await cliOk(['secret', 'set', 'dev', 'LD_PRELOAD', '--allow-name', 'LD_PRELOAD', '--store', store.dir], { input: 'v' });
  });

  it('imports a dotenv or JSON file in one write, or nothing at all', async () => {
    const out = await cliOk(['secret', 'import', 'team', '--store', store.dir], { input: 'DB_URL=postgres://x\nDB_PASSWORD="p@ss word"\n# comment\n' });
    expect(out.trim()).toBe('imported 2 secrets into team: DB_URL, DB_PASSWORD');
    for (const [input, format] of [
      ['GOOD=1\nBAD-NAME=2\n', 'dotenv'],
      ['GOOD=1\nNODE_OPTIONS=--require=/tmp/x.js\n', 'dotenv'],
      ['{"GOOD":"1","nested":{"a":"b"}}', 'json'],
      ['{"GOOD":"1","NUM":2}', 'json'],
      ['[1,2]', 'json'],
    ] as const) {
      const result = await cli(['secret', 'import', 'team', '--format', format, '--store', store.dir], { input });
      expect(result.exitCode).not.toBe(0);
      expect(await cliOk(['secret', 'list', 'team', '--store', store.dir])).toBe('DB_URL\nDB_PASSWORD\n');
    }
    await cliOk(['secret', 'import', 'team', '--format', 'json', '--store', store.dir], { input: '{"API_KEY":"k1","DB_URL":"postgres://y"}' });
    expect(await cliOk(['secret', 'list', 'team', '--store', store.dir])).toBe('DB_URL\nDB_PASSWORD\nAPI_KEY\n');
  }, 90_000);
  it('refuses a dotenv import with a line dotenv would skip or cut short, naming the line, never its text', async () => {
    await cliOk(['secret', 'import', 'lines', '--store', store.dir], { input: 'KEPT=1\n' });
    for (const [input, why] of [
      ['GOOD=1\nMY KEY=xyzzy-dropped\n', /line 2 of stdin is not NAME=value/],
      ['GOOD=1\nÉTÉ=xyzzy-dropped\n', /line 2 of stdin is not NAME=value/],
      ['GOOD=1\nPASSWORD=xyzzy#cut\n', /line 2 of stdin has a # inside an unquoted value/],
      ['GOOD="xyzzy-unclosed\nOTHER=2\n', /line 1 of stdin opens a quoted value that is never closed/],
      ["GOOD='xyzzy' trailing\n", /line 1 of stdin has text after the closing quote/],
      ['GOOD=1\nGOOD=xyzzy-again\n', /line 2 of stdin sets GOOD again \(first set on line 1\)/],
      ['GOOD=1\n__proto__=xyzzy-dropped\n', /line 2 of stdin sets __proto__, which dotenv drops/],
    ] as const) {
      const result = await cli(['secret', 'import', 'lines', '--store', store.dir], { input });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(why);
      expect(result.stderr).not.toContain('xyzzy');
      expect(await cliOk(['secret', 'list', 'lines', '--store', store.dir])).toBe('KEPT\n');
    }
    const fine = 'A=1\n# comment\n\nexport B=2\nC: 3\nD="multi\nline" # note\nE=plain # note\nPEM="-----BEGIN KEY-----\nMIIB==\n-----END KEY-----"\nF="p#ss"\n';
    expect((await cliOk(['secret', 'import', 'lines', '--store', store.dir], { input: fine })).trim()).toBe('imported 7 secrets into lines: A, B, C, D, E, PEM, F');
  }, 60_000);

  it('refuses stdin that is not UTF-8, JSON lone surrogates and a JSON name given twice, rather than storing U+FFFD or one of the two values', async () => {
    await cliOk(['secret', 'set', 'bytes', 'KEPT', '--store', store.dir], { input: 'kept' });
    const env = { ...process.env, VANTA_SOPS_FILES_PATH: '' };
    for (const [args, input, why] of [
      [['secret', 'set', 'bytes', 'RAW'], Buffer.from([0x61, 0xff, 0xfe, 0x62]), /stdin is not UTF-8 text/],
      [['secret', 'import', 'bytes'], Buffer.from('X=a\xffb\n', 'latin1'), /stdin is not UTF-8 text/],
      [['secret', 'import', 'bytes', '--format', 'json'], Buffer.from('{"X":"a\\ud800b"}'), /the value of X holds a lone UTF-16 surrogate/],
      // JSON.parse would keep the second value of a name given twice (and "\u0058" is X too).
      // The name is said, so that it can be found in a long file; neither value is.
      [['secret', 'import', 'bytes', '--format', 'json'], Buffer.from('{"X":"xyzzy-1","Y":"y","X":"xyzzy-2"}'), /stdin names the secret X twice; keep one value for each name/],
      [['secret', 'import', 'bytes', '--format', 'json'], Buffer.from('{"X":"xyzzy-1","\\u0058":"xyzzy-2"}'), /stdin names the secret X twice/],
      // A name repeated inside an object given as a value is that value's content: never said.
      [['secret', 'import', 'bytes', '--format', 'json'], Buffer.from('{"X":{"xyzzy-inner":1,"xyzzy-inner":2}}'), /the value of X is not a string; nothing was written/],
    ] as const) {
      const result = await execa(BIN, [...args, '--store', store.dir], { input, env, reject: false });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toMatch(why);
      expect(result.stderr).not.toContain('xyzzy');
      expect(await cliOk(['secret', 'list', 'bytes', '--store', store.dir])).toBe('KEPT\n');
    }
  });

  it('refuses a FIFO in place of the age identity at once, never waiting for a writer', async () => {
    const other = await makeStore({ dev: { A: 'a-value' } });
    try {
      const identity = path.join(other.dir, 'age-identity.txt');
      await rm(identity);
      execFileSync('mkfifo', ['-m', '600', identity]);
      const result = await cli(['secret', 'list', 'dev', '--store', other.dir]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toBe(`secrets-server: error RWS_STORE_INVALID: ${identity} is not a regular file (hint: put the file itself at ${identity} (0600), not a directory, pipe or device)\n`);
      // The API key pepper and the URL file are read the same way, and say the same.
      await rm(path.join(other.dir, 'api-key-pepper'));
      await mkdir(path.join(other.dir, 'api-key-pepper'));
      const pepper = await cli(['serve', '--port', '0', '--store', other.dir], { env: { SOPS_AGE_KEY_FILE: path.join(store.dir, 'age-identity.txt') } });
      expect(pepper.stderr).toMatch(/^secrets-server: error RWS_STORE_INVALID: \S+api-key-pepper is not a regular file \(hint: put the file itself at \S+ \(0600\), not a directory, pipe or device\)\n$/);
      const urlFile = await cli(['status', '--store', other.dir], { env: { RWS_DATABASE_URL_FILE: '/dev/null', SOPS_AGE_KEY_FILE: path.join(store.dir, 'age-identity.txt') } });
      expect(urlFile.stderr).toBe('secrets-server: error RWS_CONFIG_INVALID: /dev/null is not a regular file (hint: put the file itself at /dev/null (0600), not a directory, pipe or device)\n');
    } finally {
      await other.cleanup();
    }
  }, 20_000);

  it('refuses RWS_DATABASE_URL and RWS_DATABASE_URL_FILE set together, where the variable won in silence; --database-url overrides both', async () => {
    const urlFile = path.join(store.root, 'db-url');
    await writeFile(urlFile, 'postgres://rws:file-password@127.0.0.1:9/rws\n', { mode: 0o600 });
    const both = await cli(['db', 'status', '--store', store.dir], { env: { RWS_DATABASE_URL: 'postgres://rws:env-password@127.0.0.1:9/rws', RWS_DATABASE_URL_FILE: urlFile } });
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toBe('secrets-server: error RWS_USAGE: RWS_DATABASE_URL and RWS_DATABASE_URL_FILE are both set (hint: set one of them (better: RWS_DATABASE_URL_FILE, a 0600 file); --database-url, when given, overrides both)\n');
    expect(both.stderr).not.toContain('password');
    // The flag is the operator's word for this one command: both variables are left aside.
    const flag = await cli(['db', 'status', '--store', store.dir, '--database-url', 'postgresql://rws@127.0.0.1:9/flag'], { env: { RWS_DATABASE_URL: 'postgres://rws:env-password@127.0.0.1:9/rws', RWS_DATABASE_URL_FILE: urlFile } });
    expect(flag.stderr).toContain('127.0.0.1:9/flag');
    expect(flag.stderr).not.toContain('both set');
  });

  it('an import killed after writing its new version leaves a temp file that the next edit removes', async () => {
    await cliOk(['secret', 'set', 'killed', 'KEPT', '--store', store.dir], { input: 'kept-value' });
    // Large enough that writing and syncing the new version takes a while: the kill lands between
    // the temp file's creation and its rename.
    const big = JSON.stringify(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`K${i}`, 'v'.repeat(100)])));
    const temps = async () => (await readdir(store.dir)).filter((name) => name.endsWith('.tmp'));
    let left: string[] = [];
    for (let attempt = 0; attempt < 5 && left.length === 0; attempt++) {
      const child = spawn(BIN, ['secret', 'import', 'killed', '--format', 'json', '--store', store.dir], { env: { ...process.env, VANTA_SOPS_FILES_PATH: '' }, stdio: ['pipe', 'ignore', 'ignore'] });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end(big);
      let done = false;
      void exited.then(() => (done = true));
      while (!done && (await temps()).length === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      child.kill('SIGKILL');
      await exited;
      left = await temps();
      if (left.length === 0) await cliOk(['secret', 'import', 'killed', '--format', 'json', '--store', store.dir], { input: '{"KEPT":"kept-value"}' });
    }
    expect(left).toHaveLength(1);
    await cliOk(['secret', 'set', 'killed', 'NEXT', '--store', store.dir], { input: 'next-value' });
    expect(await temps()).toEqual([]);
    expect((await cliOk(['secret', 'list', 'killed', '--store', store.dir])).split('\n')).toEqual(expect.arrayContaining(['KEPT', 'NEXT']));
  }, 120_000);
});

describe('apikey', () => {
  it('prints the key once, stores only its HMAC, lists and revokes', async () => {
    const { id, key } = await makeApiKey(store, ['team'], ['DB_*'], ['--max-ttl', '15', '--expires-at', '2099-01-01T00:00:00Z']);
    expect(id).toMatch(/^ak_[0-9a-f]{16}$/);
    expect(key).toMatch(/^rws_sk_[0-9a-f]{32}$/);
    const file = (await readFile(path.join(store.dir, 'state.db'))).toString('latin1') + (await readFile(path.join(store.dir, 'state.db-wal')).catch(() => Buffer.alloc(0))).toString('latin1');
    expect(await mode(path.join(store.dir, 'state.db'))).toBe(0o600);
    expect(file).toContain(id);
    expect(file).not.toContain(key.slice(7 + 8));
    const listed = JSON.parse((await cliOk(['apikey', 'list', '--json', '--store', store.dir])).trim().split('\n').at(-1) as string);
    expect(listed).toEqual({
      id,
      name: 'test',
      admin: false,
      fallback: true,
      environments: ['team'],
      key_patterns: ['DB_*'],
      max_ttl_minutes: 15,
      created_at: expect.any(String),
      expires_at: '2099-01-01T00:00:00.000Z',
      last_used_at: null,
      revoked_at: null,
      live_tokens: 0,
      grants_intact: true,
    });
    const human = await cliOk(['apikey', 'list', '--store', store.dir]);
    expect(human).toContain(id);
    expect(human).not.toContain(key.slice(7));
    // The text line carries the same fields as the JSON one, the count of live tokens last.
    expect(human).toMatch(new RegExp(`^${id}  "test"  environments=team  key_patterns=DB_\\*  max_ttl=15m  created=\\S+  expires=2099-01-01T00:00:00.000Z  last_used=never  revoked=no  live_tokens=0$`, 'm'));
    expect(await cliOk(['apikey', 'revoke', id, '--store', store.dir])).toContain(`revoked ${id}`);
    const unknown = await cli(['apikey', 'revoke', 'ak_0000000000000000', '--store', store.dir]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toContain('RWS_APIKEY_MISSING');
  });

  it.each([
    [['--max-ttl', '61']],
    [['--max-ttl', '1.5']],
    [['--expires-at', 'tomorrow']],
    [['--expires-at', '2001-01-01T00:00:00Z']],
    // Dates that do not exist, which Date would roll into the next month or day.
    [['--expires-at', '2099-02-30T00:00:00Z']],
    [['--expires-at', '2099-04-31']],
    [['--expires-at', '2099-01-01T24:00:00Z']],
    [['--key-pattern', 'DB_.*']],
    [['--environment', '../x']],
  ])('refuses %j with a usage error', async (extra) => {
    const base = ['apikey', 'create', '--store', store.dir, '--name', 'x', '--environment', 'team', '--key-pattern', 'DB_*'];
    const result = await cli([...base, ...extra]);
    expect(result.exitCode).toBe(2);
    expect(result.stdout).not.toMatch(/rws_sk_/);
  });

  it('refuses an audit --since or --until that names no real instant, and takes 29 February of a leap year', async () => {
    for (const [flag, value] of [['--since', '2026-02-30T00:00:00Z'], ['--until', '2027-02-29'], ['--since', '2026-06-31T00:00:00+02:00']]) {
      const result = await cli(['audit', flag as string, value as string, '--store', store.dir]);
      expect({ flag, value, exitCode: result.exitCode }).toEqual({ flag, value, exitCode: 2 });
      expect(result.stderr).toContain('RWS_USAGE');
    }
    expect((await cli(['audit', '--since', '2028-02-29T00:00:00Z', '--store', store.dir])).exitCode).toBe(0);
  });

  it("keeps a key name of 128 emoji whole in the apikey.create row's subject (cut by code points, it needs no cut)", async () => {
    const name = '😀'.repeat(128);
    expect((await cli(['apikey', 'create', '--store', store.dir, '--name', name, '--environment', 'team', '--key-pattern', 'DB_*'])).exitCode).toBe(0);
    const rows = (await cliOk(['audit', '--event', 'apikey.create', '--json', '--limit', '1', '--store', store.dir])).trim().split('\n');
    const subject = (JSON.parse(rows[0]!) as { subject: string }).subject;
    expect(subject).toBe(`secrets-server apikey create --name ${name}`);
  });

  it('refuses an audit --event that names no event, listing the events, where it used to print nothing and exit 0', async () => {
    for (const args of [['audit'], ['audit', '--follow']]) {
      const result = await cli([...args, '--event', 'secret.reed', '--store', store.dir]);
      expect({ args, exitCode: result.exitCode, stdout: result.stdout }).toEqual({ args, exitCode: 2, stdout: '' });
      expect(result.stderr).toContain('RWS_USAGE');
      expect(result.stderr).toContain('secret.reed');
      expect(result.stderr).toContain('secret.read, secret.list, secret.batch');
    }
    const known = await cli(['audit', '--event', 'secret.read', '--store', store.dir]);
    expect(known.exitCode).toBe(0);
  });
});

describe('a CLI that explains itself', () => {
  it('prints the usage page without arguments, the version with --version, and help with -h on every command', async () => {
    const bare = await cli([]);
    expect(bare.exitCode).toBe(0);
    expect(bare.stdout).toMatch(/^secrets-server <command>/);
    for (const command of ['init', 'secret', 'apikey', 'db', 'audit', 'status', 'serve']) expect(bare.stdout).toContain(`secrets-server ${command}`);
    const version = await cli(['--version']);
    const { version: expected } = JSON.parse(await readFile(path.join(import.meta.dirname, '../../../package.json'), 'utf8')) as { version: string };
    expect(version.stdout).toBe(`${expected}\n`);
    expect((await cli(['-h'])).stdout).toBe(bare.stdout);
    for (const [args, options] of [
      [['-h'], []],
      [['secret', '-h'], ['--store']],
      [['apikey', '-h'], ['--store']],
      [['db', '-h'], ['--store']],
      [['serve', '-h'], ['--host', '--port', '--tls-cert', '--tls-key', '--audit-log', '--insecure-listen', '--max-connections', '--headers-timeout', '--request-timeout', '--metrics-listen', '--log-format', '--fallback-max-age']],
      [['apikey', 'create', '--help'], ['--name', '--environment', '--key-pattern', '--max-ttl', '--expires-at']],
      [['secret', 'set', '-h'], ['--allow-name']],
      [['secret', 'import', '-h'], ['--format', '--allow-name']],
      [['secret', 'list', '-h'], []],
      [['secret', 'rm', '-h'], []],
      [['db', 'migrate', '-h'], ['--database-url']],
      [['db', 'status', '-h'], ['--json']],
      [['db', 'import', '-h'], ['--from-store']],
      [['audit', '-h'], ['--api-key', '--event', '--outcome', '--environment', '--since', '--until', '--limit', '--json', '--follow']],
      [['audit', 'verify', '-h'], ['--store']],
      [['status', '-h'], ['--json']],
    ] as const) {
      const help = await cli([...args]);
      expect(help.exitCode).toBe(0);
      expect(help.stdout).toContain('Examples:');
      // The limit the flag enforces (91d is a usage error) is on its page, not only in the README.
      if (args[0] === 'serve') expect(help.stdout).toMatch(/--fallback-max-age[^[]+at most\s+90d/);
      // Keys imported under another pepper never authenticate: the help says so before the refusal does.
      if (args[0] === 'db' && args[1] === 'import') expect(help.stdout).toMatch(/--from-store[^[]+api-key-pepper must be the\s+same\s+as this store's/);
      // Every positional too: `secret import -h` showed none, so what ENV meant was left to guess.
      if (args[0] === 'secret' && args.length > 2) expect(help.stdout).toMatch(/^Positionals:\n +environment +the environment \(its file is ENV\.enc\.yaml\)/m);
      // Every option has a description: no option line ends right after its name and type.
      for (const option of options) expect(help.stdout).toMatch(new RegExp(`${option} +[a-zA-Z(]`));
    }
  });

  it('audit verify takes none of the listing\'s filters: its help lists none, and one given to it is a usage error, not ignored', async () => {
    const help = await cli(['audit', 'verify', '-h']);
    expect(help.exitCode).toBe(0);
    for (const option of ['--api-key', '--event', '--since', '--limit', '--follow']) expect(help.stdout).not.toContain(option);
    for (const filter of [['--limit', '5'], ['--since', '2030-01-01T00:00:00Z'], ['--follow']]) {
      const result = await cli(['audit', 'verify', ...filter, '--store', store.dir]);
      expect({ filter, exitCode: result.exitCode, stdout: result.stdout }).toEqual({ filter, exitCode: 2, stdout: '' });
      expect(result.stderr).toMatch(/^secrets-server: error RWS_USAGE: Unknown argument: /);
    }
    expect((await cli(['audit', 'verify', '--store', store.dir])).stdout).toMatch(/^audit chain verified: /);
    expect((await cli(['audit', '--limit', '1', '--json', '--store', store.dir])).exitCode).toBe(0);
  });

  it('a store path that does not exist is questioned before init is offered; a missing --from-store is not sent to init', async () => {
    const typo = path.join(store.root, 'vualt');
    const serve = await cli(['serve', '--port', '0', '--store', typo]);
    expect(serve.exitCode).toBe(1);
    expect(serve.stderr).toBe(`secrets-server: error RWS_STORE_MISSING: store directory ${typo} does not exist (hint: check --store / VANTA_SOPS_FILES_PATH; a new store is made with secrets-server init --store ${typo})\n`);
    const from = await cli(['db', 'import', '--from-store', typo, '--store', store.dir]);
    expect(from.exitCode).toBe(1);
    expect(from.stderr).toMatch(new RegExp(`^secrets-server: error RWS_STORE_MISSING: --from-store ${typo} does not exist \\(hint: give the store directory of the single server whose file state [^\\n]+ is to be imported\\)\\n$`));
    expect(from.stderr).not.toContain('init');
  });

  it('reports errors on one line in the wrapper\'s form', async () => {
    const result = await cli(['apikey', 'revoke', 'ak_nope', '--store', store.dir]);
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe('secrets-server: error RWS_APIKEY_MISSING: no API key ak_nope (hint: see secrets-server apikey list)\n');
    const usage = await cli(['serve', '--port']);
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toMatch(/^secrets-server: error RWS_USAGE: [^\n]+ \(hint: see secrets-server serve --help\)\n$/);
  });

  it('an age identity file emptied by hand says how to get an identity back', async () => {
    const own = await makeStore();
    try {
      await writeFile(path.join(own.dir, 'age-identity.txt'), '', { mode: 0o600 });
      const result = await cli(['secret', 'list', 'production', '--store', own.dir]);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_STORE_INVALID: \S+age-identity\.txt holds no age identity \(hint: put back its AGE-SECRET-KEY-1… line \(from a backup\), or set SOPS_AGE_KEY_FILE [^\n]+\)\n$/);
    } finally {
      await own.cleanup();
    }
  });

  it('a usage error\'s hint names the help page of its command, which lists what was missing', async () => {
    for (const [args, page] of [
      [['secret', 'set', 'production'], 'secret set'],
      [['apikey', 'create', '--name', 'x', '--store', store.dir], 'apikey create'],
      [['audit', '--limit', '0', '--store', store.dir], 'audit'],
      [['secret', 'bogus'], 'secret'],
      [['bogus'], ''],
    ] as const) {
      const result = await cli([...args]);
      expect(result.exitCode, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^secrets-server: error RWS_USAGE: [^\\n]+ \\(hint: see secrets-server ${page ? `${page} ` : ''}--help\\)\\n$`));
    }
    // Every page a hint can name exists, and the top-level page lists no command the hints miss.
    const { COMMAND_TREE } = await import('../../../src/server/help-hint.js');
    const commandsOf = (page: string) => (/^Commands:\n([^]*?)\n\n/m.exec(page)?.[1] ?? '');
    const top = commandsOf((await cli(['--help'])).stdout);
    expect([...top.matchAll(/^ {2}secrets-server (\w+) /gm)].map((m) => m[1]).sort()).toEqual(Object.keys(COMMAND_TREE).sort());
    for (const [command, subcommands] of Object.entries(COMMAND_TREE)) {
      const page = commandsOf((await cli([command, '--help'])).stdout);
      expect([...page.matchAll(new RegExp(`^ {2}secrets-server ${command} (\\w+)`, 'gm'))].map((m) => m[1]).sort()).toEqual([...subcommands].sort());
    }
  });

  it('escapes a control character an error quotes from argv or the environment (an ANSI or OSC sequence, a newline), keeping the error one line', async () => {
    const osc = '/tmp/\u001b]0;owned\u0007';
    const results = [
      await cli(['apikey', 'revoke', 'ak_\u001b[31mred\nFAKE-LINE', '--store', store.dir]),
      await cli(['audit', '--since', '\u001b[2J\n', '--store', store.dir]),
      await cli(['db', 'import', '--from-store', '/tmp/\u001b[31m\nX', '--store', store.dir]),
      await cli(['status', '--store', osc]),
      await cli(['status'], { env: { VANTA_SOPS_FILES_PATH: osc } }),
      await cli(['\u001b[31mword']),
    ];
    for (const result of results) {
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_[A-Z_]+: [^\n]*\\u001b[^\n]*\n$/);
      expect(result.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    }
  });

  it('an API key or a token pasted where an id, a name or a word was expected is not quoted back, as the wrapper does not', async () => {
    const { id, key } = await makeApiKey(store, ['prod'], ['*']);
    const token = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.${'s'.repeat(43)}`;
    const results = [
      await cli(['apikey', 'revoke', key, '--store', store.dir]),
      await cli(['apikey', 'revoke', key.toUpperCase(), '--store', store.dir]),
      await cli(['apikey', 'list', key, '--store', store.dir]),
      await cli([key]),
      await cli(['audit', '--store', store.dir, '--api-key', key, '--event', token]),
      await cli(['secret', 'set', 'prod', key, '--store', store.dir], { input: 'v' }),
    ];
    for (const result of results) {
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toMatch(/^secrets-server: error RWS_[A-Z_]+: .*(rws_sk_\[redacted\]|eyJ\[redacted token\])/);
      expect(result.stderr.toLowerCase()).not.toContain(key);
      expect(result.stderr).not.toContain(token.slice(20));
    }
    // The key was never revoked, by its own text or otherwise.
    expect(await cliOk(['apikey', 'list', '--store', store.dir])).toMatch(new RegExp(`${id} .*revoked=no`));
  });
});
