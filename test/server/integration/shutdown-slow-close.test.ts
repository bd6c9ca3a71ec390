// SIGTERM to an idle server whose close then waits on its database. With no connection open the
// HTTP listener closes at once, before the moment (250 ms) after which idle connections are
// closed; the rest of the close (the rollback guard's last sync of the audit head) takes longer.
// That moment's timer then fired anyway and started a ref'd interval nobody cleared: the process
// never exited by itself, and a supervisor waited for it until it killed it.
//
// PostgreSQL only because a test can hold that last write there, on the meta row it updates, for
// as long as it likes; the close in question (http/server.ts) is the same for SQLite.
import pg from 'pg';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, makeApiKey, makeStore, startServer, type TestStore, until } from '../helpers/server.js';
import { testDatabase } from '../../helpers/postgres.js';

/** Generous for a loaded 2-core machine; without the fix the process never exits. */
const EXIT_WITHIN_MS = 10_000;

let store: TestStore;
let db: { url: string; drop(): Promise<void> };
let env: Record<string, string>;
let apiKey: string;

beforeAll(async () => {
  store = await makeStore({ production: { SLOW_CLOSE_KEY: 'slow-close-value' } });
  db = await testDatabase();
  env = { RWS_DATABASE_URL: db.url };
  apiKey = (await makeApiKey(store, ['production'], ['SLOW_CLOSE_*'], [], env)).key;
}, 60_000);

afterAll(async () => {
  await db?.drop();
  await store?.cleanup();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('SIGTERM to an idle server whose close waits on the database', () => {
  it('exits by itself once the database answers the last write', async () => {
    const server = await startServer(store, [], env);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      // The guard's sync at stop is `UPDATE meta … WHERE name = 'database_id'`: it waits on this.
      await holder.query('BEGIN');
      await holder.query("SELECT value FROM meta WHERE name = 'database_id' FOR UPDATE");
      // A token minted is an audit row the guard has not made durable yet, so its stop has a write
      // to make. Its connection is closed before the signal: the listener has nothing to wait for.
      const client = new Agent();
      expect((await generate(server, apiKey, { subject: 'slow-close', environment: 'production', key_pattern: 'SLOW_CLOSE_*' }, client)).status).toBe(201);
      await client.close();
      const exited = server.stop('SIGTERM');
      await until(async () => server.stderr().includes('secrets-server: SIGTERM, closing'), 5_000);
      // The situation: the listener is closed, and the process is still closing well past the moment.
      await sleep(1_000);
      const probe = new Agent();
      const refused = await fetch(`${server.url}/api/v1/auth/self`, { dispatcher: probe }).catch((error: Error) => error.cause);
      await probe.close();
      expect(refused).toMatchObject({ code: 'ECONNREFUSED' });
      expect(server.process.exitCode).toBeNull();

      await holder.query('COMMIT');
      const outcome = await Promise.race([exited, sleep(EXIT_WITHIN_MS).then(() => 'still running')]);
      expect(outcome).toBe(0);
    } finally {
      if (server.process.exitCode === null && server.process.signalCode === null) server.process.kill('SIGKILL');
      await holder.end();
    }
  }, 60_000);
});
