// The rollback guard's once-a-second check, when the store keeps it from running: state-seen.json
// made readable by others (or another user's, or a full disk) made every check fail in silence,
// and a database restored from an older copy then went unnoticed by it. Now the log says so once,
// and says when the check runs again.
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeStore, startServer, type TestStore, until } from '../helpers/server.js';

let store: TestStore;

beforeAll(async () => {
  store = await makeStore({ production: { A_KEY: 'a-value' } });
});
afterAll(async () => {
  await store?.cleanup();
});

describe('the rollback check kept from running', () => {
  it('is logged once, with the file and the fix, and its return once', async () => {
    const server = await startServer(store);
    try {
      const seen = path.join(store.dir, 'state-seen.json');
      await chmod(seen, 0o644);
      await until(async () => server.stderr() !== '', 5000);
      // Checks go on failing every second: still the one line.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      expect(server.stderr()).toBe(
        `secrets-server: error RWS_STORE_INVALID: ${seen} is readable by others (mode 644); the check for a state database restored from an older copy cannot run until then (hint: chmod 600 ${seen})\n`,
      );
      await chmod(seen, 0o600);
      await until(async () => server.stderr().includes('\nsecrets-server: the rollback check runs again\n'), 5000);
    } finally {
      await server.stop();
    }
  });
});
