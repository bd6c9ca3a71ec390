// The batch's ETag, If-None-Match and `?wait=` long-polls, against the real server, its real
// files and the real `secret set`: what is charged and audited, what wakes a held request and
// what must not, hostile query and header values, the hold limits, the connection cap's idle
// closing, and shutdown while requests are held.
import { rename, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSopsFile, identityToRecipient, parseAgeIdentities } from '../../../src/sops/index.js';
import { auditRowsSync, call, cliOk, makeApiKey, makeStore, type Reply, type RunningServer, startServer, type TestStore, token, until } from '../helpers/server.js';

const VALUES = { SERVICE_A_KEY: 'a-value', SERVICE_A_URL: 'https://a', PIN: '1234' };

let store: TestStore;
let apiKey: { id: string; key: string };
let server: RunningServer;

beforeAll(async () => {
  store = await makeStore({ production: VALUES, staging: VALUES });
  apiKey = await makeApiKey(store, ['production', 'staging'], ['*']);
  server = await startServer(store);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

interface BatchOptions {
  etag?: string;
  wait?: string;
  body?: Record<string, unknown>;
  headers?: Record<string, string>;
  dispatcher?: Dispatcher;
}

function batch(target: { url: string }, t: string, options: BatchOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.etag !== undefined) headers['if-none-match'] = options.etag;
  const query = options.wait === undefined ? '' : `?${options.wait}`;
  return call(`${target.url}/api/v1/vault/secrets/batch${query}`, { auth: t, json: options.body ?? { environment: 'production' }, headers, dispatcher: options.dispatcher });
}

const mint = (target: { url: string } = server, extra: Record<string, unknown> = {}, key = apiKey.key) => token(target, key, { environment: 'production', key_pattern: '*', ...extra });
const jtiOf = (t: string): string => JSON.parse(Buffer.from(t.split('.')[1] as string, 'base64url').toString()).jti;
const setSecret = (name: string, value: string, environment = 'production') => cliOk(['secret', 'set', environment, name, '--store', store.dir], { input: value });
/** A token's batch rows, its refusals included (a 401's row is an `auth.failure`). */
const rowsOf = (t: string) => auditRowsSync(store.dir).filter((row) => row.jti === jtiOf(t) && (row.event === 'secret.batch' || row.event === 'auth.failure'));

/** A whole new encryption of `values` (new data key, new IVs, new MAC). */
async function encrypted(values: Record<string, string>): Promise<string> {
  const identities = parseAgeIdentities(await readFile(path.join(store.dir, 'age-identity.txt'), 'utf8'));
  return createSopsFile(values, await Promise.all(identities.map(identityToRecipient)));
}

/** Puts `text` in place as the environment's file, as an editor or a git checkout does: a rename. */
async function replaceWith(environment: string, text: string): Promise<void> {
  const temp = path.join(store.dir, `.${environment}.replace.tmp`);
  await writeFile(temp, text, { mode: 0o600 });
  await rename(temp, path.join(store.dir, `${environment}.enc.yaml`));
}

const reencrypt = async (environment: string, values: Record<string, string>) => replaceWith(environment, await encrypted(values));

async function timed<T>(work: Promise<T>): Promise<{ value: T; at: number }> {
  const value = await work;
  return { value, at: Date.now() };
}

/**
 * The batch once the server serves PIN's new value: an edit by another process (the CLI) is seen
 * within a second, as the README says (the file is re-checked every 250 ms), not at once. A
 * batch asked for right after `secret set` returned could still be answered from the old file.
 */
async function servingPin(value: string): Promise<Reply> {
  let reply: Reply | undefined;
  await until(async () => {
    reply = await batch(server, await mint());
    return reply.body.secrets?.PIN === value;
  }, 1_000);
  return reply as Reply;
}

describe('ETag and If-None-Match', () => {
  it('tags a batch by what it served: stable across requests and tokens, new when a value changes, the same again when it changes back', async () => {
    const first = await batch(server, await mint());
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag') as string;
    expect(etag).toMatch(/^"v1-[A-Za-z0-9_-]{43}"$/);
    expect((await batch(server, await mint())).headers.get('etag')).toBe(etag);
    // Same values, another environment: another answer, another tag.
    const staging = await batch(server, await token(server, apiKey.key, { environment: 'staging', key_pattern: '*' }), { body: { environment: 'staging' } });
    expect(staging.body.secrets).toEqual(first.body.secrets);
    expect(staging.headers.get('etag')).not.toBe(etag);
    // Only what was served counts: another selection, another tag; a change outside it, none.
    const keyOnly = await batch(server, await mint(), { body: { environment: 'production', keys: ['SERVICE_A_KEY'] } });
    expect(keyOnly.headers.get('etag')).not.toBe(etag);
    await setSecret('PIN', '9999');
    const changed = await servingPin('9999');
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect((await batch(server, await mint(), { body: { environment: 'production', keys: ['SERVICE_A_KEY'] } })).headers.get('etag')).toBe(keyOnly.headers.get('etag'));
    await setSecret('PIN', '1234');
    expect((await servingPin('1234')).headers.get('etag')).toBe(etag);
  });

  it('is keyed: two stores holding the same values give different tags, and the same signing secret gives the same', async () => {
    const other = await makeStore({ production: VALUES });
    try {
      const otherKey = (await makeApiKey(other, ['production'], ['*'])).key;
      const otherServer = await startServer(other);
      let otherTag: string | null;
      try {
        otherTag = (await batch(otherServer, await mint(otherServer, {}, otherKey))).headers.get('etag');
      } finally {
        await otherServer.stop();
      }
      const ours = (await batch(server, await mint())).headers.get('etag');
      expect(otherTag).toMatch(/^"v1-/);
      expect(otherTag).not.toBe(ours);
      // The tag's key comes from the signing secret: given ours, the other store tags alike.
      const secret = (await readFile(path.join(store.dir, 'jwt-secret'), 'utf8')).trim();
      const sameSecret = await startServer(other, [], { VANTA_JWT_SECRET_KEY: secret });
      try {
        expect((await batch(sameSecret, await mint(sameSecret, {}, otherKey))).headers.get('etag')).toBe(ours);
      } finally {
        await sameSecret.stop();
      }
    } finally {
      await other.cleanup();
    }
  }, 60_000);

  it('answers 304 without a body when If-None-Match holds the tag, charged as a use: a limit-1 token is then spent', async () => {
    const etag = (await batch(server, await mint())).headers.get('etag') as string;
    const t = await mint(server, { usage_limit: 1 });
    const notModified = await batch(server, t, { etag });
    expect(notModified.status).toBe(304);
    expect(notModified.text).toBe('');
    expect(notModified.headers.get('etag')).toBe(etag);
    expect(notModified.headers.get('cache-control')).toBe('no-store');
    const spent = await batch(server, t, { etag });
    expect(spent.status).toBe(401);
    expect(spent.body.error.code).toBe('RWS_TOKEN_EXHAUSTED');
    const rows = rowsOf(t);
    expect(rows.map((row) => [row.event, row.status, row.outcome])).toEqual([
      ['secret.batch', 304, 'success'],
      ['auth.failure', 401, 'failure'],
    ]);
    expect(rows[0]?.keys).toEqual(Object.keys(VALUES));
  });

  it('compares weakly and takes lists, as RFC 9110 says for If-None-Match', async () => {
    const etag = (await batch(server, await mint())).headers.get('etag') as string;
    const t = await mint();
    expect((await batch(server, t, { etag: `W/${etag}` })).status).toBe(304);
    expect((await batch(server, t, { etag: `"other", ${etag}` })).status).toBe(304);
    expect((await batch(server, t, { etag: ` , "a,b" ,, W/${etag} ` })).status).toBe(304);
    expect((await batch(server, t, { etag: '"other", W/"v1-another"' })).status).toBe(200);
    // An entity tag holds its quotes: the bare value is not one.
    expect((await batch(server, t, { etag: etag.slice(1, -1) })).status).toBe(400);
  });

  it('refuses hostile If-None-Match headers with a 400 that costs no use', async () => {
    const t = await mint(server, { usage_limit: 1 });
    const hostile = ['*', 'abc', '"unterminated', 'W/', '"a" "b"', '"a";"b"', `"${'x'.repeat(5000)}"`, Array.from({ length: 65 }, (_, i) => `"t${i}"`).join(', '), 'w/"lowercase-weak"', '"tab\there"', ' , '];
    for (const value of hostile) {
      const reply = await batch(server, t, { etag: value });
      expect([value.slice(0, 20), reply.status, reply.body?.error?.code]).toEqual([value.slice(0, 20), 400, 'RWS_BAD_REQUEST']);
    }
    // None of them was charged: the limit-1 token still reads once.
    expect((await batch(server, t)).status).toBe(200);
  });

  it('reads If-None-Match sent on several header lines as one list', async () => {
    const t = await mint();
    const etag = (await batch(server, t)).headers.get('etag') as string;
    const body = JSON.stringify({ environment: 'production' });
    const ask = async (lines: string[]) => {
      const connection = await open(Number(new URL(server.url).port));
      const headers = lines.map((line) => `If-None-Match: ${line}\r\n`).join('');
      connection.socket.write(`POST /api/v1/vault/secrets/batch HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/json\r\n${headers}Content-Length: ${body.length}\r\n\r\n${body}`);
      await connection.ended;
      return /^HTTP\/1\.1 (\d+)/.exec(connection.received())?.[1];
    };
    expect(await ask(['"v1-other"', etag])).toBe('304');
    expect(await ask(['"v1-other"', '"v1-another"'])).toBe('200');
    expect(await ask([etag, '*'])).toBe('400');
  });

  it('keeps a plain GET per key working as before, without a tag', async () => {
    const reply = await call(`${server.url}/api/v1/vault/production/SERVICE_A_KEY`, { auth: await mint() });
    expect(reply.status).toBe(200);
    expect(reply.body.value).toBe('a-value');
    expect(reply.headers.get('etag')).toBeNull();
  });
});

describe('?wait= long-polls', () => {
  const currentTag = async (body?: Record<string, unknown>) => (await batch(server, await mint(), { body })).headers.get('etag') as string;

  it('refuses hostile wait values with a 400 RWS_BAD_REQUEST, before holding anything and at no cost', async () => {
    const etag = await currentTag();
    const t = await mint(server, { usage_limit: 1 });
    const hostile = ['wait=-1', 'wait=1e9', 'wait=61', 'wait=abc', 'wait=5&wait=5', 'wait=', 'wait', 'wait=1.5', 'wait=+5', 'wait=05', 'wait=0x10', 'wait=%20%35', 'wait=5&other=1', 'other=1', `wait=${'9'.repeat(5000)}`];
    for (const query of hostile) {
      const started = Date.now();
      const reply = await batch(server, t, { etag, wait: query });
      expect([query.slice(0, 20), reply.status, reply.body?.error?.code]).toEqual([query.slice(0, 20), 400, 'RWS_BAD_REQUEST']);
      expect(Date.now() - started).toBeLessThan(2000);
    }
    expect((await batch(server, t)).status).toBe(200);
  });

  it('answers at once when there is nothing to wait for: no If-None-Match, another tag, or wait=0', async () => {
    const etag = await currentTag();
    const t = await mint();
    const started = Date.now();
    expect((await batch(server, t, { wait: 'wait=30' })).status).toBe(200);
    expect((await batch(server, t, { wait: 'wait=30', etag: '"v1-old"' })).status).toBe(200);
    expect((await batch(server, t, { wait: 'wait=0', etag })).status).toBe(304);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('answers 304 when the wait ends with nothing changed, charged once and audited once', async () => {
    const etag = await currentTag();
    const t = await mint();
    const started = Date.now();
    const reply = await batch(server, t, { etag, wait: 'wait=2' });
    expect(reply.status).toBe(304);
    expect(reply.headers.get('etag')).toBe(etag);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
    const rows = rowsOf(t);
    expect(rows).toHaveLength(1);
    // The row is written when the answer is given, not when the request came.
    expect(Date.parse(rows[0]?.time as string)).toBeGreaterThanOrEqual(started + 1900);
  });

  it('wakes a held request with the new values as soon as `secret set` changes one, long before the wait ends', async () => {
    const etag = await currentTag();
    const t = await mint(server, { usage_limit: 1 });
    const held = timed(batch(server, t, { etag, wait: 'wait=30' }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await setSecret('SERVICE_A_KEY', 'rotated-a');
    const setDone = Date.now();
    const { value: reply, at } = await held;
    expect(reply.status).toBe(200);
    expect(reply.body.secrets.SERVICE_A_KEY).toBe('rotated-a');
    expect(reply.headers.get('etag')).not.toBe(etag);
    // Woken by the change (the wait was 30 s); the latency is measured by bench/watch-server.mjs.
    expect(at - setDone).toBeLessThan(5000);
    console.log(`long-poll woken ${at - setDone} ms after secret set returned`);
    // The one use of the limit-1 token was charged by the answer, not by the hold.
    expect(rowsOf(t).map((row) => row.status)).toEqual([200]);
    await setSecret('SERVICE_A_KEY', 'a-value');
  });

  it('is not woken by a re-encryption with the same values: secret set to the same value, or a whole new encryption', async () => {
    const etag = await currentTag();
    const before = await readFile(path.join(store.dir, 'production.enc.yaml'), 'utf8');
    const started = Date.now();
    const held = batch(server, await mint(), { etag, wait: 'wait=4' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await setSecret('SERVICE_A_URL', 'https://a');
    await reencrypt('production', VALUES);
    expect(await readFile(path.join(store.dir, 'production.enc.yaml'), 'utf8')).not.toBe(before);
    const reply = await held;
    expect(reply.status).toBe(304);
    expect(Date.now() - started).toBeGreaterThanOrEqual(3900);
    expect((await batch(server, await mint())).headers.get('etag')).toBe(etag);
  });

  it('sees a change made just before the hold began, while the server still served the older version from its cache', async () => {
    const temp = path.join(store.dir, '.production.replace.tmp');
    await writeFile(temp, await encrypted({ ...VALUES, PIN: '5555' }), { mode: 0o600 });
    const t = await mint();
    const before = await batch(server, t);
    // Within the store's 250 ms re-check: the hold's first answer comes from the old version.
    await rename(temp, path.join(store.dir, 'production.enc.yaml'));
    const started = Date.now();
    const reply = await batch(server, t, { etag: before.headers.get('etag') as string, wait: 'wait=20' });
    expect(reply.status).toBe(200);
    expect(reply.body.secrets.PIN).toBe('5555');
    // At once, not at the next look at the state (every 5 s) nor at the end of the wait.
    expect(Date.now() - started).toBeLessThan(4000);
    await setSecret('PIN', '1234');
  });

  it('wakes only the requests whose answer changed: a change outside the keys asked for leaves them held', async () => {
    const body = { environment: 'production', keys: ['SERVICE_A_URL'] };
    const narrowTag = await currentTag(body);
    const wideTag = await currentTag();
    const started = Date.now();
    const narrow = timed(batch(server, await mint(), { etag: narrowTag, wait: 'wait=3', body }));
    const wide = timed(batch(server, await mint(), { etag: wideTag, wait: 'wait=20' }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await setSecret('PIN', '4321');
    const wideReply = await wide;
    expect(wideReply.value.status).toBe(200);
    const narrowReply = await narrow;
    expect(narrowReply.value.status).toBe(304);
    expect(narrowReply.at - started).toBeGreaterThanOrEqual(2900);
    await setSecret('PIN', '1234');
  });

  it('answers 404 to a held request whose secret is removed, and 401 to one whose API key is revoked, without waiting for the end', async () => {
    await setSecret('TEMPORARY', 'temp-value');
    const body = { environment: 'production', keys: ['TEMPORARY'] };
    const etag = await currentTag(body);
    const removed = timed(batch(server, await mint(), { etag, wait: 'wait=30', body }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cliOk(['secret', 'rm', 'production', 'TEMPORARY', '--store', store.dir]);
    const removedAt = Date.now();
    const gone = await removed;
    expect(gone.value.status).toBe(404);
    expect(gone.at - removedAt).toBeLessThan(5000);

    const doomed = await makeApiKey(store, ['production'], ['*']);
    const t = await mint(server, {}, doomed.key);
    const held = timed(batch(server, t, { etag: await currentTag(), wait: 'wait=30' }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cliOk(['apikey', 'revoke', doomed.id, '--store', store.dir]);
    const revokedAt = Date.now();
    const refused = await held;
    expect(refused.value.status).toBe(401);
    expect(refused.value.body.error.code).toBe('RWS_TOKEN_REVOKED');
    // The state is looked at every 5 s while requests are held.
    expect(refused.at - revokedAt).toBeLessThan(12_000);
  }, 60_000);

  it('charges nothing to a client that hangs up while held, and says so in the audit row', async () => {
    const etag = await currentTag();
    const t = await mint(server, { usage_limit: 1 });
    const connection = await open(Number(new URL(server.url).port));
    connection.socket.write(heldRequest(t, etag, 30));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(connection.received()).toBe('');
    connection.socket.destroy();
    await until(async () => rowsOf(t).length === 1, 5000);
    expect(rowsOf(t).map((row) => [row.status, row.outcome, row.error_code])).toEqual([[499, 'failure', 'RWS_CLIENT_CLOSED']]);
    expect((await batch(server, t)).status).toBe(200);
  });

  it('holds a request past --request-timeout: that bounds receiving a request, not waiting for its answer', async () => {
    const short = await startServer(store, ['--headers-timeout', '1', '--request-timeout', '1']);
    try {
      const etag = (await batch(short, await mint(short))).headers.get('etag') as string;
      const started = Date.now();
      const reply = await batch(short, await mint(short), { etag, wait: 'wait=3' });
      expect(reply.status).toBe(304);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    } finally {
      await short.stop();
    }
  });

  it('wakes 200 watchers of one environment with one edit, each with the new values', async () => {
    const etag = await currentTag();
    const agent = new Agent({ connections: 250 });
    try {
      const tokens = await Promise.all(Array.from({ length: 200 }, () => mint()));
      const held = tokens.map((t) => batch(server, t, { etag, wait: 'wait=30', dispatcher: agent }));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await setSecret('SERVICE_A_URL', 'https://a.rotated');
      const setDone = Date.now();
      const replies = await Promise.all(held);
      const elapsed = Date.now() - setDone;
      expect(replies.map((reply) => reply.status)).toEqual(Array(200).fill(200));
      expect(replies.every((reply) => reply.body.secrets.SERVICE_A_URL === 'https://a.rotated')).toBe(true);
      expect(elapsed).toBeLessThan(10_000);
      console.log(`200 watchers answered within ${elapsed} ms of secret set`);
    } finally {
      await agent.close();
      await setSecret('SERVICE_A_URL', 'https://a');
    }
  }, 60_000);
});

describe('charged when answered, exactly', () => {
  it('charges a limit-5 token exactly 5 times when 20 requests held with it are woken at once', async () => {
    const etag = (await batch(server, await mint())).headers.get('etag') as string;
    const t = await mint(server, { usage_limit: 5 });
    const agent = new Agent({ connections: 30 });
    try {
      const held = Array.from({ length: 20 }, () => batch(server, t, { etag, wait: 'wait=30', dispatcher: agent }));
      await new Promise((resolve) => setTimeout(resolve, 800));
      await setSecret('SERVICE_A_URL', 'https://a.raced');
      const statuses = (await Promise.all(held)).map((reply) => reply.status);
      expect(statuses.filter((status) => status === 200)).toHaveLength(5);
      expect(statuses.filter((status) => status === 401)).toHaveLength(15);
      expect(rowsOf(t).filter((row) => row.outcome === 'success')).toHaveLength(5);
    } finally {
      await agent.close();
      await setSecret('SERVICE_A_URL', 'https://a');
    }
  }, 60_000);

  it('charges and audits nothing for requests held by a server that is SIGKILLed', async () => {
    const doomed = await startServer(store);
    const etag = (await batch(doomed, await mint(doomed))).headers.get('etag') as string;
    const tokens = await Promise.all([1, 2, 3].map(() => mint(doomed, { usage_limit: 1 })));
    const held = tokens.map((t) => batch(doomed, t, { etag, wait: 'wait=30' }).catch(() => 'cut'));
    await new Promise((resolve) => setTimeout(resolve, 800));
    await doomed.stop('SIGKILL');
    expect(await Promise.all(held)).toEqual(['cut', 'cut', 'cut']);
    for (const t of tokens) {
      expect(rowsOf(t)).toEqual([]);
      // The one use of each is still there, on the server that goes on.
      expect((await batch(server, t)).status).toBe(200);
    }
  }, 60_000);
});

describe('hold limits', () => {
  it('holds at most --max-long-polls-per-key per API key (429) and --max-long-polls in all (503), refusing at no cost', async () => {
    const limited = await startServer(store, ['--max-long-polls', '5', '--max-long-polls-per-key', '3', '--metrics-listen', '127.0.0.1:0']);
    await until(async () => /metrics on (\S+)/.test(limited.stderr()));
    const metrics = async () => (await call(/metrics on (\S+)/.exec(limited.stderr())?.[1] as string)).text;
    const other = await makeApiKey(store, ['production'], ['*']);
    const agent = new Agent({ connections: 20 });
    try {
      const etag = (await batch(limited, await mint(limited))).headers.get('etag') as string;
      const hold = (t: string) => batch(limited, t, { etag, wait: 'wait=4', dispatcher: agent });
      const ours = await Promise.all([1, 2, 3].map(() => mint(limited)));
      const theirs = await Promise.all([1, 2, 3].map(() => mint(limited, {}, other.key)));
      const held = ours.map(hold);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const t = await mint(limited, { usage_limit: 1 });
      const perKey = await hold(t);
      expect(perKey.status).toBe(429);
      expect(perKey.body.error.code).toBe('RWS_RATE_LIMITED');
      expect(perKey.headers.get('retry-after')).toBe('5');
      // Another key still gets two; the sixth in all is refused whoever asks.
      held.push(hold(theirs[0] as string), hold(theirs[1] as string));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const total = await hold(theirs[2] as string);
      expect(total.status).toBe(503);
      expect(total.body.error.code).toBe('RWS_SERVER_BUSY');
      expect(total.headers.get('retry-after')).toBe('5');
      expect(await metrics()).toContain('\nrws_long_polls_held 5\n');
      // Without wait nothing is held, so nothing is refused.
      expect((await batch(limited, theirs[2] as string, { etag, dispatcher: agent })).status).toBe(304);
      expect((await Promise.all(held)).map((reply) => reply.status)).toEqual([304, 304, 304, 304, 304]);
      // The refusals cost no use: the limit-1 token is held and answered once the others are gone.
      expect((await hold(t)).status).toBe(304);
      const text = await metrics();
      expect(text).toContain('\nrws_long_polls_held 0\n');
      // Seven 304s (five held, one at once, the limit-1 token's) and the first 200 are uses.
      expect(text).toContain('\nrws_token_uses_total 8\n');
    } finally {
      await agent.close();
      await limited.stop();
    }
  }, 60_000);

  it('refuses --max-long-polls at or above the connection cap, and bad values of either flag', async () => {
    const { cli } = await import('../helpers/server.js');
    const cases = [
      ['--max-connections', '10', '--max-long-polls', '10'],
      ['--max-long-polls', '-1'],
      ['--max-long-polls', '1.5'],
      ['--max-long-polls-per-key', '-2'],
      ['--max-long-polls-per-key', 'many'],
    ];
    const results = await Promise.all(cases.map((args) => cli(['serve', '--store', store.dir, '--port', '0', ...args])));
    results.forEach((result, i) => {
      expect([cases[i]?.join(' '), result.exitCode]).toEqual([cases[i]?.join(' '), 2]);
      expect(result.stderr).toMatch(/max-long-polls/);
    });
  }, 60_000);
});

/** A long-poll written by hand, for a raw connection. */
function heldRequest(t: string, etag: string, wait: number): string {
  const body = JSON.stringify({ environment: 'production' });
  return `POST /api/v1/vault/secrets/batch?wait=${wait} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nContent-Type: application/json\r\nIf-None-Match: ${etag}\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

/** A raw TCP connection that records what it receives. */
function open(port: number): Promise<{ socket: Socket; received: () => string; ended: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let received = '';
    const ended = new Promise<void>((done) => socket.once('close', () => done()));
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    socket.once('connect', () => {
      socket.on('error', () => undefined);
      resolve({ socket, received: () => received, ended });
    });
    socket.once('error', reject);
  });
}

describe('connections', () => {
  it('never closes a held request as idle when the connection cap makes room: idle connections go first', async () => {
    const capped = await startServer(store, ['--max-connections', '6', '--max-long-polls', '4']);
    const port = Number(new URL(capped.url).port);
    try {
      const t = await mint(capped);
      const etag = (await batch(capped, t)).headers.get('etag') as string;
      const request = heldRequest(t, etag, 20);
      const held = await Promise.all([1, 2, 3, 4].map(() => open(port)));
      for (const connection of held) connection.socket.write(request);
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Twelve newcomers press on a cap of 6 with 4 held: each evicts an idle one, never a held one.
      const idle = [];
      for (let i = 0; i < 12; i++) idle.push(await open(port));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(idle.filter((connection) => connection.socket.destroyed).length).toBeGreaterThanOrEqual(10);
      for (const connection of held) expect(connection.socket.destroyed).toBe(false);
      await setSecret('SERVICE_A_URL', 'https://a.capped');
      await until(async () => held.every((connection) => connection.received().includes('\r\n\r\n{')), 10_000);
      for (const connection of held) expect(connection.received()).toMatch(/^HTTP\/1\.1 200 [\s\S]*https:\/\/a\.capped/);
      for (const connection of [...held, ...idle]) connection.socket.destroy();
    } finally {
      await setSecret('SERVICE_A_URL', 'https://a');
      await capped.stop();
    }
  }, 60_000);
});

describe('shutdown', () => {
  it('answers every held request at SIGTERM with the answer of that moment, audits each, and exits promptly', async () => {
    const closing = await startServer(store);
    const agent = new Agent({ connections: 10 });
    try {
      const etag = (await batch(closing, await mint(closing))).headers.get('etag') as string;
      const tokens = await Promise.all([1, 2, 3, 4, 5].map(() => mint(closing)));
      const held = tokens.map((t) => batch(closing, t, { etag, wait: 'wait=60', dispatcher: agent }));
      await new Promise((resolve) => setTimeout(resolve, 800));
      const started = Date.now();
      const exit = closing.stop('SIGTERM');
      const replies = await Promise.all(held);
      expect(replies.map((reply) => reply.status)).toEqual([304, 304, 304, 304, 304]);
      expect(await exit).toBe(0);
      // Not cut after the 5 s grace, nor kept open for keep-alive.
      expect(Date.now() - started).toBeLessThan(4000);
      for (const t of tokens) expect(rowsOf(t).map((row) => row.status)).toEqual([304]);
      expect(closing.stderr()).not.toMatch(/RWS_INTERNAL|Error/);
    } finally {
      await agent.close();
      await closing.stop();
    }
  }, 60_000);
});
