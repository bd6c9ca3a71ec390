// One throwaway PostgreSQL server for the whole run, started by the first test that needs one
// (test/helpers/postgres.ts), so runs without database tests pay nothing. Here: only the run dir
// and its removal, after every worker is done, passed or failed (postgres-cleanup.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { createRunDir, pgCtlPath } from './postgres-server.js';

const CLEANUP = fileURLToPath(new URL('./postgres-cleanup.mjs', import.meta.url));

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  const external = process.env.RWS_TEST_DATABASE_URL;
  if (external) {
    project.provide('rwsPostgres', { kind: 'external', url: external });
    return undefined;
  }
  const runDir = await createRunDir();
  const pgCtl = (await pgCtlPath()) ?? '';
  spawn(process.execPath, [CLEANUP, runDir, pgCtl, String(process.pid)], { detached: true, stdio: 'ignore' }).unref();
  // provide/inject rather than an env var: the processes that tests spawn (servers under test)
  // must get their database only from the test, never by inheriting it.
  project.provide('rwsPostgres', { kind: 'embedded', runDir });
  return () => {
    spawnSync(process.execPath, [CLEANUP, runDir, pgCtl], { stdio: 'inherit' });
  };
}
