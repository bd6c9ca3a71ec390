// The two kinds of state an integration suite runs against: SQLite in the store, and a database
// of its own on the test PostgreSQL server (RWS_DATABASE_URL), dropped afterwards.
import { testDatabase } from '../../helpers/postgres.js';

export type Backend = { name: string; database(): Promise<{ env: Record<string, string>; drop(): Promise<void> }> };

export const BACKENDS: Backend[] = [
  { name: 'SQLite', database: async () => ({ env: {}, drop: async () => undefined }) },
  {
    name: 'PostgreSQL',
    database: async () => {
      const db = await testDatabase();
      return { env: { RWS_DATABASE_URL: db.url }, drop: db.drop };
    },
  },
];
