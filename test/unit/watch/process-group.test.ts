// A watched child's process group on real processes: the last-resort kill of the wrapper's exit
// path reaches every member, a grandchild that ignores SIGTERM included.
import { describe, expect, it } from 'vitest';
import { startChild } from '../../../src/process/spawn.js';
import { groupAlive, killGroupOnExit } from '../../../src/watch/process-group.js';

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await condition()); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  expect(await condition()).toBe(true);
}

describe('killGroupOnExit', () => {
  it('SIGKILLs the whole group from the synchronous exit path, a grandchild that ignores SIGTERM included', async () => {
    const running = await startChild({ command: 'sh', args: ['-c', 'trap "" TERM; sleep 60 & echo $!; wait'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, ownGroup: true, filters: undefined });
    const pgid = running.child.pid!;
    await until(() => groupAlive(pgid));
    killGroupOnExit(running).disposeSync();
    expect(await running.done).toEqual({ kind: 'signal', signal: 'SIGKILL' });
    await until(async () => !(await groupAlive(pgid)));
  });

});
