// A named lock's session on a thread of its own (see lock-session.ts for why): takes the lock,
// beats while it holds it, answers whether it still does, and lets go when told or when the
// process ends (the thread, its connection and so the lock die with the process).
import { parentPort, workerData } from 'node:worker_threads';
import { LockSession } from './lock-session.js';

export interface LockKeeperData {
  url: string;
  name: string;
  application: string;
}

export type LockKeeperRequest = { kind: 'check'; id: number } | { kind: 'release' };

const port = parentPort ?? fail('lock-keeper.js runs as a worker thread');

function fail(message: string): never {
  throw new Error(message);
}

const { url, name, application } = workerData as LockKeeperData;
const { outcome, session } = await LockSession.acquire(url, name, application);
port.postMessage({ kind: 'outcome', outcome });
if (session === undefined) {
  port.close();
} else {
  port.on('message', (request: LockKeeperRequest) => {
    if (request.kind === 'check') {
      void session.check().then((held) => port.postMessage({ kind: 'checked', id: request.id, held }));
    } else {
      void session.release().finally(() => {
        port.postMessage({ kind: 'released' });
        port.close();
      });
    }
  });
}
