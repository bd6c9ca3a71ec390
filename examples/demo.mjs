#!/usr/bin/env node
// `npm run demo`: the main job on the bundled DEMO vault. Starts secrets-server on a free loopback
// port over a private copy of examples/vault/, then runs the bundled legacy apps under
// run-with-secrets: env mode, file mode, a refused pattern, and a local .env run. Stops the
// server at the end. Nothing to set up; nothing is left behind.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const rws = join(root, 'bin', 'run-with-secrets.js');
const server = join(root, 'bin', 'secrets-server.js');

// git keeps no 0600/0700 modes: copy the demo store somewhere private and fix them there.
const work = mkdtempSync(join(tmpdir(), 'rws-demo-'));
const store = join(work, 'store');
cpSync(join(here, 'vault'), store, { recursive: true });
chmodSync(store, 0o700);
for (const entry of readdirSync(store)) chmodSync(join(store, entry), 0o600);
const envFile = join(here, 'demo.env');
chmodSync(envFile, 0o600);

const child = spawn(server, ['serve', '--store', store, '--port', '0'], {
  env: { ...process.env, SOPS_AGE_KEY_FILE: join(store, 'age-identity.txt') },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise((resolve, reject) => {
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    const match = /listening on (\S+)/.exec(out);
    if (match) resolve(match[1]);
  });
  child.once('exit', (code) => reject(new Error(`secrets-server exited ${code} before it was ready`)));
});
console.log(`secrets-server (DEMO store, a copy of examples/vault) is listening on ${url}`);

const vaultEnv = { ...process.env, RWS_VAULT_URL: url, RWS_API_KEY_FILE: join(store, 'DEMO-API-KEY'), RWS_DEMO_NOT_FOR_THE_APP: 'the wrapper never passes RWS_* on' };
const app = (name, ...args) => ['--', process.execPath, join(here, name), ...args];
const steps = [
  ['env mode: a token scoped to demo/SERVICE_B_* is minted, used once, revoked; the app gets the secrets as variables', ['-e', 'demo', '-k', 'SERVICE_B_*', ...app('legacy-app.js', 'SERVICE_B_')], vaultEnv, 0],
  ['file mode: the app reads a 0600 file in a private RAM-backed directory, removed on exit', ['-e', 'demo', '-k', 'SERVICE_B_*', '--inject-as', 'file', '--file-format', 'json', ...app('file-app.js')], vaultEnv, 0],
  ['refused: the demo API key does not grant SERVICE_A_* (exit 125, one line, nothing started)', ['-e', 'demo', '-k', 'SERVICE_A_*', ...app('legacy-app.js', 'SERVICE_A_')], vaultEnv, 125],
  ['local: a developer tests a .env with no server at all', ['--env-file', envFile, '-k', 'DEMO_*', ...app('legacy-app.js', 'DEMO_')], process.env, 0],
];
let failed = 0;
try {
  for (const [title, args, env, expected] of steps) {
    // Quoted as a shell needs them, so that a line copied from here runs the same (an unquoted
    // SERVICE_B_* would be expanded by the shell wherever a file matches it).
    const shown = args.map((arg) => (arg === process.execPath ? 'node' : shellWord(arg.replace(`${root}/`, '')))).join(' ');
    console.log(`\n=== ${title}\n$ run-with-secrets ${shown}`);
    const result = spawnSync(rws, args, { stdio: 'inherit', env });
    console.log(`(exit status ${result.status})`);
    if (result.status !== expected) failed++;
  }
  const listed = spawnSync(server, ['audit', '--json', '--limit', '1000', '--store', store], { encoding: 'utf8' });
  const audit = listed.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line)).reverse();
  console.log(`\n=== the server's audit trail (SQLite state.db in the store): ${audit.length} rows, names only, never a value or a token`);
  for (const line of audit) console.log(`  #${line.seq} ${line.event} ${line.outcome} env=${line.environment ?? '-'} keys=${(line.keys ?? []).join(',') || '-'} jti=${line.jti ?? '-'}`);
  const verified = spawnSync(server, ['audit', 'verify', '--store', store], { encoding: 'utf8' });
  console.log(`\n$ secrets-server audit verify\n${verified.stdout.trim()}`);
  if (listed.status !== 0 || verified.status !== 0) failed++;
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(work, { recursive: true, force: true });
}
console.log(failed === 0 ? '\ndemo finished: every step behaved as expected' : `\ndemo: ${failed} step(s) did not behave as expected`);
process.exitCode = failed === 0 ? 0 : 1;

function shellWord(word) {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
