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

/**
 * `abandon` aborted (the driver closing) ends the session wherever it is: a wait fails at once
 * (`failed`, never run again on this thread), a lock held is let go, and check() says so.
 */
export async function keepLock(data: LockKeeperData, abandon?: AbortSignal): Promise<KeptLock> {
  const script = new URL('./lock-keeper.js', import.meta.url);
  if (!existsSync(script)) return keepOnThisThread(data, abandon);
  const { Worker } = await import('node:worker_threads');
  if (abandon?.aborted) return notHeld();
  let worker: InstanceType<typeof Worker>;
  try {
    worker = new Worker(script, { workerData: data });
  } catch {
    // A thread the system will not make (EAGAIN: a container's pids limit, RLIMIT_NPROC, memory)
    // fails here, thrown by the constructor (ERR_WORKER_INIT_FAILED), not as an 'error' event.
    return keepOnThisThread(data, abandon);
  }
  // Ending the thread closes its connection: the database ends the wait or lets the lock go.
  const stop = (): void => void worker.terminate();
  abandon?.addEventListener('abort', stop, { once: true });
  worker.once('exit', () => abandon?.removeEventListener('abort', stop));
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
    return abandon?.aborted ? notHeld() : keepOnThisThread(data, abandon);
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

function notHeld(): KeptLock {
  return { outcome: { kind: 'failed', code: undefined }, check: async () => false, release: async () => undefined };
}

async function keepOnThisThread(data: LockKeeperData, abandon?: AbortSignal): Promise<KeptLock> {
  const { outcome, session } = await LockSession.acquire(data.url, data.name, data.application, abandon);
  return {
    outcome,
    check: async () => (await session?.check()) ?? false,
    release: async () => session?.release(),
  };
}
