// What a server's log says while its PostgreSQL is down (crashed: pg_ctl stop -m immediate):
// one full line at the first refusal (where, why, what to do, never the password), nothing per
// request after it, and one line when a request's commit goes through again; folded 429 rows that
// cannot be written meanwhile are counted, not logged a line per client, and said at a stop.
import { Agent } from 'undici';
import { expect, it } from 'vitest';
import { call, cleanedAfterEach, generate, makeApiKey, type RunningServer, token } from '../helpers/server.js';
import { postgresControl } from '../../helpers/postgres.js';

const control = postgresControl();
const made = cleanedAfterEach();

const read = (running: RunningServer, t: string) => call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: t });
const lines = (running: RunningServer, pattern: RegExp): string[] => running.stderr().split('\n').filter((line) => pattern.test(line));

it('logs the first refusal of an outage in full with its hint, counts the rest, and says once when the database is back', async (context) => {
  if (control === undefined) return context.skip();
  await control.start();
  const env = { RWS_DATABASE_URL: control.url };
  const password = decodeURIComponent(new URL(control.url).password);
  const store = await made.store({ production: { SERVICE_B_KEY: 'b-key-value' } });
  const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*'], [], env);
  const running = await made.serve(store, [], env);
  const t = await token(running, key, { environment: 'production', key_pattern: 'SERVICE_B_KEY' });
  expect((await read(running, t)).status).toBe(200);

  await control.stopImmediate();
  let refused = 0;
  for (let i = 0; i < 20; i++) {
    const reply = await read(running, t);
    expect(reply.status).toBe(503);
    expect([reply.body.error.code, reply.headers.get('retry-after')]).toEqual(['RWS_STATE_UNAVAILABLE', '1']);
    refused++;
  }
  // One line for twenty refusals: the database's location (password masked), the cause, a hint.
  const said = lines(running, /RWS_STATE_UNAVAILABLE/);
  expect(said).toHaveLength(1);
  expect(said[0]).toMatch(/^secrets-server: error RWS_STATE_UNAVAILABLE: the state database postgres:\/\/[^:@]+:\*\*\*@127\.0\.0\.1:\d+\/postgres did not answer \([^)]+\) \(hint: .+ at 127\.0\.0\.1:\d+.*\)$/);
  expect(running.stderr()).not.toContain('StateUnavailableError');

  await control.start();
  let status = 503;
  const deadline = Date.now() + 20_000;
  while (status !== 200 && Date.now() < deadline) {
    status = (await read(running, t)).status;
    if (status !== 200) {
      refused++;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  expect(status).toBe(200);
  // More requests after the recovery say nothing more.
  for (let i = 0; i < 3; i++) expect((await read(running, t)).status).toBe(200);
  const back = lines(running, /reachable again/);
  expect(back).toHaveLength(1);
  expect(back[0]).toMatch(new RegExp(`^secrets-server: the state database is reachable again after [\\d.]+ s; ${refused} requests were refused meanwhile$`));
  expect(lines(running, /RWS_STATE_UNAVAILABLE/)).toHaveLength(1);
  expect(running.stderr()).not.toContain(password);
  expect(running.stderr()).not.toContain('b-key-value');
}, 90_000);

it('counts the folded 429 rows it could not write in the outage, instead of a line per client', async (context) => {
  if (control === undefined) return context.skip();
  await control.start();
  const env = { RWS_DATABASE_URL: control.url };
  const store = await made.store({ production: { SERVICE_B_KEY: 'b-key-value' } });
  const running = await made.serve(store, [], env);
  const clients = [41, 42, 43].map((n) => new Agent({ localAddress: `127.0.0.${n}` }));
  const ask = (client: Agent, i: number) => generate(running, `rws_sk_${i.toString(16).padStart(32, '0')}`, { subject: 's', environment: 'production', key_pattern: 'SERVICE_B_KEY' }, client);
  try {
    // Each client's 21 wrong keys are refused (401) while the database answers; its next request,
    // in the outage, is limited (429) and folded into a row for the client, written at the stop.
    for (const client of clients) for (let i = 0; i < 21; i++) expect((await ask(client, i)).status).toBe(401);
    await control.stopImmediate();
    // A forged token: an API key would be looked up (503 in an outage) before the 429.
    for (const client of clients) expect((await call(`${running.url}/api/v1/vault/production/SERVICE_B_KEY`, { auth: 'not-a-token', dispatcher: client })).status).toBe(429);
    expect((await read(running, 'not-a-token')).status).toBe(503);
    expect(await running.stop()).toBe(0);
    // The three clients' rows, written at the stop, are lost: said in one line, not one per client.
    const said = lines(running, /RWS_STATE_UNAVAILABLE/);
    expect(said).toHaveLength(2);
    expect(said[1]).toMatch(/^secrets-server: error RWS_STATE_UNAVAILABLE: stopping while the state database is still unavailable after [\d.]+ s; 1 request refused and 3 folded 429 audit rows not written$/);
    expect(lines(running, /folded 429/)).toHaveLength(1);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}, 90_000);
