// Reads spread over several servers by 30 concurrent clients, while one server is SIGKILLed.
import type { RunningServer } from './server.js';

export async function readWhileKilling(targets: RunningServer[], victim: RunningServer, read: (server: RunningServer) => Promise<{ status: number }>): Promise<{ ok: number; failed: number }> {
  const replies: Array<{ status: number } | 'failed'> = [];
  const load = Promise.all(
    Array.from({ length: 30 }, async (_, worker) => {
      for (let i = 0; i < 20; i++) replies.push(await read(targets[(worker + i) % targets.length] as RunningServer).catch(() => 'failed' as const));
    }),
  );
  setTimeout(() => victim.process.kill('SIGKILL'), 400);
  await load;
  await victim.stop();
  return {
    ok: replies.filter((reply) => reply !== 'failed' && reply.status === 200).length,
    failed: replies.filter((reply) => reply === 'failed').length,
  };
}
