// The 429 limit counts an IPv6 /64 as one client: with real sockets from many addresses of one
// /64, in a network namespace of our own (skipped only where unshare is refused).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditRowsSync, BIN, cliOk, makeApiKey, makeStore, type TestStore } from '../helpers/server.js';

const run = promisify(execFile);
let store: TestStore;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'v6-secret-value' } });
  apiKey = (await makeApiKey(store, ['production'], ['SERVICE_B_*'])).key;
});
afterAll(async () => {
  await store?.cleanup();
});

// Runs inside the namespace: starts the server on ::1, then asks from each address in turn.
const CLIENT = `
import { spawn } from 'node:child_process';
import { request } from 'node:http';
const [bin, storeDir, apiKey, ...plan] = process.argv.slice(2);
const server = spawn(bin, ['serve', '--store', storeDir, '--host', '::1', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((resolve) => { let out = ''; server.stdout.on('data', (c) => { out += c; const m = /listening on (\\S+)\\n/.exec(out); if (m) resolve(m[1]); }); });
const { port } = new URL(url);
const ask = (localAddress, key) => new Promise((resolve, reject) => {
  const body = JSON.stringify({ subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' });
  const req = request({ host: '::1', port, localAddress, method: 'POST', path: '/api/v1/vault/tokens/generate', headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  req.on('error', reject);
  req.end(body);
});
const results = [];
for (const step of plan) {
  // Not within 5 s of a minute's end: what follows is folded within one minute.
  if (step === 'sync') {
    const left = 60000 - (Date.now() % 60000);
    if (left < 5000) await new Promise((resolve) => setTimeout(resolve, left + 50));
    continue;
  }
  const [address, which] = step.split('=');
  results.push(await ask(address, which === 'good' ? apiKey : 'rws_sk_' + '0'.repeat(32)));
}
// The server writes its folded 429 rows as it closes: wait for it.
const exited = new Promise((resolve) => server.on('exit', resolve));
server.kill('SIGTERM');
await exited;
console.log(JSON.stringify(results));
`;

/** Runs the plan (`address=bad|good` steps, and `sync`) from inside a namespace holding these addresses. */
async function askFrom(addresses: string[], plan: string[]): Promise<number[]> {
  const script = path.join(store.root, 'v6-client.mjs');
  await writeFile(script, CLIENT);
  const setup = ['ip link set lo up', ...addresses.map((address) => `ip -6 addr add ${address}/64 dev lo nodad`), 'exec "$@"'].join(' && ');
  const { stdout } = await run('unshare', ['-rn', 'sh', '-c', setup, 'sh', process.execPath, script, BIN, store.dir, apiKey, ...plan]);
  return JSON.parse(stdout) as number[];
}

describe('IPv6', () => {
  it('limits a whole /64 after more than 20 failures from 21 of its addresses; another /64 and the right key are unaffected', async (context) => {
    if (!(await run('unshare', ['-rn', 'true']).then(() => true, () => false))) return context.skip();
    const inPrefix = Array.from({ length: 23 }, (_, i) => `2001:db8:1:2::${(i + 16).toString(16)}`);
    const other = '2001:db8:1:3::10';
    const plan = [...inPrefix.slice(0, 21).map((a) => `${a}=bad`), `${inPrefix[21]}=bad`, `${other}=bad`, `${inPrefix[22]}=good`];
    const statuses = await askFrom([...inPrefix, other], plan);
    expect(statuses.slice(0, 21)).toEqual(Array(21).fill(401));
    expect(statuses[21]).toBe(429); // a 22nd address of the same /64: limited
    expect(statuses[22]).toBe(401); // another /64: its own count
    expect(statuses[23]).toBe(201); // the right key from the limited /64 still works
  });

  it('folds the 429s of a /64 into one audit row per minute naming the /64, not one per address', async (context) => {
    if (!(await run('unshare', ['-rn', 'true']).then(() => true, () => false))) return context.skip();
    const inPrefix = Array.from({ length: 51 }, (_, i) => `2001:db8:7:8::${(i + 16).toString(16)}`);
    const statuses = await askFrom(inPrefix, inPrefix.map((a) => `${a}=bad`));
    expect(statuses.slice(0, 21)).toEqual(Array(21).fill(401));
    expect(statuses.slice(21)).toEqual(Array(30).fill(429));
    const folded = auditRowsSync(store.dir).filter((row) => row.event === 'auth.rate_limited' && String(row.client).startsWith('2001:db8:7:8'));
    // One row, or two when the 30 refusals straddled a minute's end.
    expect(folded.length).toBeGreaterThanOrEqual(1);
    expect(folded.length).toBeLessThanOrEqual(2);
    expect(folded.map((row) => row.client)).toEqual(folded.map(() => '2001:db8:7:8::/64'));
    expect(folded.reduce((sum, row) => sum + Number(row.count), 0)).toBe(30);
  });

  it('gives a /48 at most 16 folded rows of its /64s a minute: the 429s of its other /64s are counted in the /48\'s row', async (context) => {
    if (!(await run('unshare', ['-rn', 'true']).then(() => true, () => false))) return context.skip();
    const prefixes = Array.from({ length: 20 }, (_, i) => `2001:db8:9:${(i + 1).toString(16)}::10`);
    // Each /64 is limited after its own 21 401s; then two 429s each, all within one minute.
    const limit = prefixes.flatMap((a) => Array<string>(21).fill(`${a}=bad`));
    const refused = [...prefixes, ...prefixes].map((a) => `${a}=bad`);
    const statuses = await askFrom(prefixes, [...limit, 'sync', ...refused]);
    expect(statuses.slice(0, limit.length)).toEqual(Array(limit.length).fill(401));
    expect(statuses.slice(limit.length)).toEqual(Array(refused.length).fill(429));
    const folded = auditRowsSync(store.dir).filter((row) => row.event === 'auth.rate_limited' && String(row.client).startsWith('2001:db8:9:'));
    expect(new Set(folded.map((row) => row.time)).size).toBe(1);
    const counts = Object.fromEntries(folded.map((row) => [row.client, row.count]));
    const expected: Record<string, number> = { '2001:db8:9::/48': 2 * 4 };
    for (const a of prefixes.slice(0, 16)) expected[a.replace('::10', '::/64')] = 2;
    expect(counts).toEqual(expected);
    expect(await cliOk(['audit', 'verify', '--store', store.dir])).toMatch(/verified/);
  });
});
