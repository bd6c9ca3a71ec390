// Free text a key holder chooses (a token's subject, a key name set over the admin API) reaches
// the operator's terminal and log shippers through `audit`, `audit --json`/`--follow`, the
// `--audit-log` file and `apikey list`. Nothing in it may move the cursor, reverse a line or
// break one: such characters are written as `\uXXXX`, and JSON lines still parse to the text.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, call, cliOk, generate, makeApiKey, makeStore, type RunningServer, startServer, type TestStore, until } from '../helpers/server.js';

/** A bidi override and isolate, U+2028/U+2029, zero-width and soft hyphen, a BOM, two invisible tag characters. */
const SUBJECT = 'ci-job\u202e\u2066  key=ak_0000000000000000  ok\u2028FAKE\u2029\u200b\u00ad\ufeff\u{E0041}\u{E0042}';
/** What a terminal must never be sent raw: controls (but the line's own newline), format characters, separators. */
const UNSEEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;

let store: TestStore;
let server: RunningServer;
let auditLog: string;
let adminKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SERVICE_B_KEY: 'hostile-output-value' } });
  const { key } = await makeApiKey(store, ['production'], ['SERVICE_B_*']);
  adminKey = (/^key: (\S+)$/m.exec(await cliOk(['apikey', 'create', '--store', store.dir, '--name', 'ops', '--admin'])) as RegExpExecArray)[1] as string;
  auditLog = path.join(store.root, 'audit.jsonl');
  server = await startServer(store, ['--audit-log', auditLog]);
  expect((await generate(server, key, { subject: SUBJECT, environment: 'production', key_pattern: 'SERVICE_B_*' })).status).toBe(201);
  const made = await call(`${server.url}/api/v1/auth/keys`, { auth: adminKey, json: { name: `ops\u202e\u2028${SUBJECT}`, admin: true } });
  expect(made.status).toBe(201);
});
afterAll(async () => {
  await server?.stop();
  await store?.cleanup();
});

function lines(text: string): string[] {
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n');
}

function expectNothingUnseen(text: string): void {
  for (const line of lines(text)) expect(line).not.toMatch(UNSEEN);
}

describe('free text in admin output', () => {
  it('audit escapes a subject\'s bidi override, separators and invisible characters', async () => {
    const out = await cliOk(['audit', '--store', store.dir, '--event', 'token.generate']);
    expectNothingUnseen(out);
    expect(lines(out)).toHaveLength(1);
    expect(out).toContain('subject="ci-job\\u202e\\u2066  key=ak_0000000000000000  ok\\u2028FAKE\\u2029\\u200b\\u00ad\\ufeff\\udb40\\udc41\\udb40\\udc42"');
  });

  it('audit --json and the --audit-log file escape them too, one object per line that parses back to the subject', async () => {
    const json = await cliOk(['audit', '--json', '--store', store.dir, '--event', 'token.generate']);
    await until(async () => (await readFile(auditLog, 'utf8')).includes('token.generate'));
    const file = await readFile(auditLog, 'utf8');
    for (const text of [json, file]) {
      expectNothingUnseen(text);
      const rows = lines(text).map((line) => JSON.parse(line) as { event: string; subject: string });
      expect(rows.filter((row) => row.event === 'token.generate').map((row) => row.subject)).toEqual([SUBJECT]);
    }
    // The escapes change the text, never the value the chain covers.
    expect((await cliOk(['audit', 'verify', '--store', store.dir])).startsWith('audit chain verified')).toBe(true);
  });

  it('audit --follow escapes them in the rows it streams', async () => {
    const follow = spawn(BIN, ['audit', '--follow', '--store', store.dir, '--event', 'token.generate', '--limit', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    follow.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((resolve) => follow.once('exit', resolve));
    try {
      await until(async () => out.includes('\n'));
    } finally {
      follow.kill('SIGTERM');
      await exited;
    }
    expectNothingUnseen(out);
    expect((JSON.parse(lines(out)[0] as string) as { subject: string }).subject).toBe(SUBJECT);
  });

  it('apikey list and apikey list --json escape a key name set over the admin API', async () => {
    const text = await cliOk(['apikey', 'list', '--store', store.dir]);
    expectNothingUnseen(text);
    expect(lines(text)).toHaveLength(3);
    expect(text).toContain('ops\\u202e\\u2028ci-job\\u202e');
    const json = await cliOk(['apikey', 'list', '--json', '--store', store.dir]);
    expectNothingUnseen(json);
    expect(lines(json).map((line) => (JSON.parse(line) as { name: string }).name)).toContain(`ops\u202e\u2028${SUBJECT}`);
  });

  it('apikey list quotes a name, so a read key named admin or holding fields of its own passes for nothing else', async () => {
    const forged = 'ci  max_ttl=15m  revoked=2026-01-01T00:00:00.000Z';
    for (const name of ['admin', forged]) {
      const made = await call(`${server.url}/api/v1/auth/keys`, { auth: adminKey, json: { name, environments: ['production'], key_patterns: ['SERVICE_B_*'] } });
      expect(made.status).toBe(201);
      const id = made.body.id as string;
      const line = lines(await cliOk(['apikey', 'list', '--store', store.dir])).find((row) => row.startsWith(`${id}  `)) as string;
      const shown = `${id}  "${name}"  `;
      expect(line.startsWith(shown)).toBe(true);
      expect(line.slice(shown.length)).toMatch(/^environments=production {2}key_patterns=SERVICE_B_\* {2}max_ttl=60m {2}created=\S+ {2}expires=never {2}last_used=never {2}revoked=no {2}live_tokens=0$/);
    }
  });
});
