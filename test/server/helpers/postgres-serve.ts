// A store, a PostgreSQL database of its own and a server on both, made before a file's tests and
// removed after them; and SQL straight to that database, for what a test does behind the server
// (triggers that fail or slow a statement, reading what was committed).
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { makeStore, type RunningServer, startServer, type TestStore } from './server.js';
import { testDatabase } from '../../helpers/postgres.js';

export interface PostgresServe {
  store: TestStore;
  /** RWS_DATABASE_URL, for the CLI. */
  env: Record<string, string>;
  server: RunningServer;
  sql(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

/** Call at a file's top level: the fields are there once its beforeAll hooks have run. */
export function servedOnPostgres(secrets: Record<string, Record<string, string>>): PostgresServe {
  let db: { url: string; drop(): Promise<void> } | undefined;
  const served = {
    env: {},
    sql: async (text: string, values: unknown[] = []) => {
      const client = new pg.Client({ connectionString: db?.url });
      await client.connect();
      try {
        return await client.query(text, values);
      } finally {
        await client.end();
      }
    },
  } as PostgresServe;
  beforeAll(async () => {
    served.store = await makeStore(secrets);
    db = await testDatabase();
    served.env = { RWS_DATABASE_URL: db.url };
    served.server = await startServer(served.store, [], served.env);
  }, 60_000);
  afterAll(async () => {
    await served.server?.stop();
    await db?.drop();
    await served.store?.cleanup();
  });
  return served;
}
