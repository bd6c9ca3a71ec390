// What the wall-time benches of a run share: a throwaway store with N secrets and a key, a real
// secrets-server on it, timing one command, medians, and the package as a registry install runs
// it (the same build without any V8 code cache: those are made by a local build, never shipped).
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const root = resolve(import.meta.dirname, '../..');
export const rws = join(root, 'bin/run-with-secrets.js');
const server = join(root, 'bin/secrets-server.js');

/** The bench's tools, every process run with `env` (a trimmed environment, as cron gives). */
export function vaultBench(env) {
  function admin(args, input) {
    const result = spawnSync(server, args, { input, env, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`secrets-server ${args[0]} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** A store under `dir` with `count` secrets SERVICE_B_KEY_i in environment `bench`, and a key granting them. */
  function makeStore(dir, count) {
    const store = join(dir, 'store');
    mkdirSync(dir, { recursive: true });
    admin(['init', '--store', store]);
    const values = Object.fromEntries(Array.from({ length: count }, (_, i) => [`SERVICE_B_KEY_${i}`, `value-${i}-${'x'.repeat(40)}`]));
    admin(['secret', 'import', 'bench', '--format', 'json', '--store', store], JSON.stringify(values));
    const key = /^key: (\S+)$/m.exec(admin(['apikey', 'create', '--store', store, '--name', 'bench', '--environment', 'bench', '--key-pattern', 'SERVICE_B_*']))[1];
    return { store, values, key };
  }

  async function startServer(store) {
    const child = spawn(server, ['serve', '--store', store, '--port', '0'], { env: { ...env, SOPS_AGE_KEY_FILE: join(store, 'age-identity.txt') }, stdio: ['ignore', 'pipe', 'inherit'] });
    const url = await new Promise((resolvePromise, reject) => {
      let out = '';
      child.stdout.on('data', (chunk) => {
        out += chunk;
        const match = /listening on (\S+)/.exec(out);
        if (match) resolvePromise(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    return { url, stop: () => new Promise((done) => { child.once('exit', done); child.kill('SIGTERM'); }) };
  }

  return { admin, makeStore, startServer };
}

/** Wall time of one run of `argv`, in ms; a failed run stops the bench. */
export function time(argv, env) {
  const started = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${argv.slice(0, 6).join(' ')} failed: ${String(result.stderr).trim()}`);
  return ms;
}

export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** A copy of the package under `dir` without any code cache, as installed from the registry; returns its bin. */
export function uncachedCopy(dir) {
  for (const entry of ['bin', 'dist', 'package.json']) cpSync(join(root, entry), join(dir, entry), { recursive: true });
  for (const sub of ['dist', 'dist/cli', 'dist/vault-client']) {
    for (const name of readdirSync(join(dir, sub))) if (name.endsWith('.cache')) rmSync(join(dir, sub, name));
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin/run-with-secrets.js');
}
