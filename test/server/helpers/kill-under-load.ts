// Reads spread over several servers by 30 concurrent clients, while one server is SIGKILLed.
// The kill lands mid-load whatever the machine's speed: once a third of the first 600 reads are
// answered (a fixed delay let a fast machine finish every read before the kill), and the clients
// go on until 300 ms after it, so some of them are cut off by it.
import type { RunningServer } from './server.js';

export async function readWhileKilling(targets: RunningServer[], victim: RunningServer, read: (server: RunningServer) => Promise<{ status: number }>): Promise<{ ok: number; failed: number }> {
  const replies: Array<{ status: number } | 'failed'> = [];
  let killedAt: number | undefined;
  const kill = (): void => {
    if (killedAt !== undefined) return;
    killedAt = Date.now();
    victim.process.kill('SIGKILL');
  };
  const going = (i: number): boolean => i < 20 || killedAt === undefined || Date.now() < killedAt + 300;
  const load = Promise.all(
    Array.from({ length: 30 }, async (_, worker) => {
      for (let i = 0; going(i); i++) {
        replies.push(await read(targets[(worker + i) % targets.length] as RunningServer).catch(() => 'failed' as const));
        if (replies.length >= 200) kill();
      }
    }),
  );
  await load;
  await victim.stop();
  return {
    ok: replies.filter((reply) => reply !== 'failed' && reply.status === 200).length,
    failed: replies.filter((reply) => reply === 'failed').length,
  };
}
