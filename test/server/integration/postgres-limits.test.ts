// The server's own time limits on PostgreSQL, which make "the database does not answer → 503
// RWS_STATE_UNAVAILABLE within the request timeout" true: a connect that times out says so, and
// where it was connecting, never the URL's password.
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, makeStore, type TestStore } from '../helpers/server.js';

const PASSWORD = 'pw-c0nnect-TIMEOUT-9f3e';

let store: TestStore;
let hole: Server;
const accepted: Socket[] = [];

beforeAll(async () => {
  store = await makeStore();
  // Accepts every connection and never says a word: a server behind a firewall that lets the
  // handshake through, a host that is up with PostgreSQL stopped (SIGSTOP), a proxy to nowhere.
  hole = createServer((socket) => {
    accepted.push(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => hole.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const socket of accepted) socket.destroy();
  await new Promise((resolve) => hole?.close(resolve));
  await store?.cleanup();
});

it('a connect that times out says so, with how long and where, and a hint that fits; never the password', async () => {
  const { port } = hole.address() as AddressInfo;
  const url = `postgres://rws:${PASSWORD}@127.0.0.1:${port}/rws`;
  for (const [args, env] of [
    [['db', 'status', '--database-url', url], {}],
    [['apikey', 'list'], { RWS_DATABASE_URL: url }],
  ] as const) {
    const started = Date.now();
    const result = await cli([...args, '--store', store.dir], { env });
    const took = Date.now() - started;
    expect({ args, exitCode: result.exitCode, stdout: result.stdout }).toEqual({ args, exitCode: 1, stdout: '' });
    expect(result.stderr).toContain('RWS_STATE_UNAVAILABLE');
    expect(result.stderr).toContain(`connecting to 127.0.0.1:${port} timed out after 3 s`);
    expect(result.stderr).toContain(`check that 127.0.0.1:${port} is reachable`);
    expect(result.stderr).not.toContain('connection failed');
    expect(result.stderr).not.toContain('db status');
    expect(result.stderr).not.toContain(PASSWORD);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    // The server's connect timeout, not a hang: 3 s and the process's start.
    expect(took).toBeLessThan(15_000);
  }
  expect(accepted.length).toBeGreaterThanOrEqual(2);
});
