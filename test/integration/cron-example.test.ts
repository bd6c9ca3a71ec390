// examples/cron run the way cron runs them: `env -i` with PATH=/usr/bin:/bin and the few
// variables cron sets (HOME, LOGNAME, SHELL), plus the VAR=value lines of the example crontab.
// Against a real secrets-server; the backup program is a stand-in that prints its secrets file.
import { execa } from 'execa';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeApiKey, makeStore, startServer, type RunningServer, type TestStore } from '../server/helpers/server.js';
import { BIN, makeRuntimeDir, removeDir, ROOT } from '../helpers/cli.js';

const SCRIPT = join(ROOT, 'examples/cron/backup-with-secrets.sh');
let store: TestStore;
let server: RunningServer;
let dir: string;
let keyFile: string;
let backup: string;

beforeAll(async () => {
  store = await makeStore({ prod: { BACKUP_TOKEN: 'backup-token-value', OTHER_KEY: 'not-for-backup' } });
  const { key } = await makeApiKey(store, ['prod'], ['BACKUP_*']);
  server = await startServer(store);
  dir = makeRuntimeDir();
  keyFile = join(dir, 'rws-api-key');
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  backup = join(dir, 'backup');
  writeFileSync(backup, '#!/bin/sh\necho "backup ran as $(id -un)"\ncat "$SECRETS_FILE"\n');
  chmodSync(backup, 0o755);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
  if (dir) removeDir(dir);
});

/** The script under cron's environment; `settings` are what the crontab's VAR= lines would set. */
function underCron(settings: Record<string, string>) {
  const crontabVariables = Object.entries(settings).map(([name, value]) => `${name}=${value}`);
  return execa('env', ['-i', 'PATH=/usr/bin:/bin', `HOME=${dir}`, 'LOGNAME=root', 'SHELL=/bin/sh', ...crontabVariables, SCRIPT], { reject: false, extendEnv: false });
}

describe('the cron example under cron\'s environment', () => {
  it('runs the backup with exactly its secrets, through an fd, and keeps its exit status', async () => {
    const result = await underCron({ RWS: BIN, BACKUP: backup, BACKUP_LOCK: join(dir, 'lock'), RWS_VAULT_URL: server.url, RWS_API_KEY_FILE: keyFile });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain("BACKUP_TOKEN='backup-token-value'");
    expect(result.stdout).not.toContain('OTHER_KEY');
    expect(result.stderr).toBe('');
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^rws_sk_/);
  });

  it('names a missing run-with-secrets as such, not as a failure of the backup program', async () => {
    const result = await underCron({ RWS: 'run-with-secrets-not-installed', BACKUP: backup, BACKUP_LOCK: join(dir, 'lock'), RWS_VAULT_URL: server.url, RWS_API_KEY_FILE: keyFile });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain('run-with-secrets not found (looked for run-with-secrets-not-installed on PATH /usr/local/bin:/usr/bin:/bin)');
    expect(result.stderr).not.toContain('backup program');
  });

  it('names a missing backup program as such', async () => {
    const result = await underCron({ RWS: BIN, BACKUP: join(dir, 'no-backup-here'), BACKUP_LOCK: join(dir, 'lock'), RWS_VAULT_URL: server.url, RWS_API_KEY_FILE: keyFile });
    expect(result.exitCode).toBe(127);
    expect(result.stderr).toContain(`backup program ${join(dir, 'no-backup-here')} missing or not executable`);
  });

  it('a wrapper failure (the vault refuses the key) is reported as one, with 125', async () => {
    const wrongKey = join(dir, 'wrong-key');
    writeFileSync(wrongKey, `rws_sk_${'0'.repeat(32)}\n`, { mode: 0o600 });
    const result = await underCron({ RWS: BIN, BACKUP: backup, BACKUP_LOCK: join(dir, 'lock'), RWS_VAULT_URL: server.url, RWS_API_KEY_FILE: wrongKey });
    expect(result.exitCode).toBe(125);
    const lines = result.stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: string; code?: string; message: string });
    expect(lines.map((line) => line.code ?? line.message)).toEqual(['RWS_VAULT_AUTH', 'run-with-secrets failed before the backup ran (vault, credential or config): see the line above']);
  });
});
