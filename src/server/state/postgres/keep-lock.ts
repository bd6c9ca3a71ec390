// The edit's side of a named lock's session: the session runs on a thread of its own
// (lock-keeper.ts), so that its heartbeat goes on while this thread is busy. Where that thread
// cannot run (this module loaded from source by the tests, a thread that fails to start), the
// session runs on this thread: a long busy stretch may then cost the lock, which check()
// reports, never a lost edit.
import { existsSync } from 'node:fs';
import { LockSession, type LockOutcome } from './lock-session.js';
import { QUERY_TIMEOUT_MS } from './time-limits.js';
import type { LockKeeperData, LockKeeperRequest } from './lock-keeper.js';

export interface KeptLock {
  outcome: LockOutcome;
  /** Whether the lock is still held, asked of the database. */
  check(): Promise<boolean>;
  release(): Promise<void>;
}

export async function keepLock(data: LockKeeperData): Promise<KeptLock> {
  const script = new URL('./lock-keeper.js', import.meta.url);
  if (!existsSync(script)) return keepOnThisThread(data);
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(script, { workerData: data });
  let gone = false;
  const waiting = new Map<number, (held: boolean) => void>();
  let released: (() => void) | undefined;
  const end = (): void => {
    gone = true;
    for (const answer of waiting.values()) answer(false);
    waiting.clear();
    released?.();
  };
  const outcome = await new Promise<LockOutcome | undefined>((resolve) => {
    worker.on('message', (message: { kind: string; outcome?: LockOutcome; id?: number; held?: boolean }) => {
      if (message.kind === 'outcome') resolve(message.outcome as LockOutcome);
      else if (message.kind === 'checked') {
        waiting.get(message.id as number)?.(message.held === true);
        waiting.delete(message.id as number);
      } else if (message.kind === 'released') released?.();
    });
    // A thread that fails or ends holds nothing (its connection closes with it).
    worker.on('error', () => resolve(undefined));
    worker.on('exit', () => {
      resolve(undefined);
      end();
    });
  });
  if (outcome === undefined) {
    await worker.terminate();
    return keepOnThisThread(data);
  }
  let next = 0;
  const send = (request: LockKeeperRequest): void => worker.postMessage(request);
  return {
    outcome,
    check: () =>
      new Promise<boolean>((resolve) => {
        if (gone) return resolve(false);
        const id = next++;
        waiting.set(id, resolve);
        send({ kind: 'check', id });
      }),
    release: async () => {
      if (!gone && outcome.kind === 'held') {
        // Its ROLLBACK is bounded by the statement timeout; past that, ending the thread closes
        // the connection, and the database lets the lock go with it.
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          released = resolve;
          timer = setTimeout(resolve, QUERY_TIMEOUT_MS + 1_000);
          send({ kind: 'release' });
        });
        clearTimeout(timer);
      }
      await worker.terminate();
    },
  };
}

async function keepOnThisThread(data: LockKeeperData): Promise<KeptLock> {
  const { outcome, session } = await LockSession.acquire(data.url, data.name, data.application);
  return {
    outcome,
    check: async () => (await session?.check()) ?? false,
    release: async () => session?.release(),
  };
}
