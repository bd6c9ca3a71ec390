// `POST /api/v1/vault/secrets/batch`, with its long-poll: a request that would get a 304 and asks
// `?wait=N` is held until the answer it would get changes (a 200 with other values, or a refusal:
// the token revoked, the secret removed), or N seconds have passed (then 304), or the token's
// lifetime ends (304 while it is still good, rather than a 401 a watcher would take for a
// revocation), or the server closes (the answer of that moment). The answer is then computed
// afresh, as for a new request: the use is charged and the audit row written when it is given.
// A client that hangs up while held is not charged; its row says so (499 RWS_CLIENT_CLOSED).
import { answerBatch, type Exchange, type HandlerDeps, type Reply } from '../handlers.js';
import { HttpError } from '../http-error.js';
import { readJsonBody } from '../request.js';

export async function batchSecrets(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  // The body is read once the token is known (401 before 400), and kept for the re-checks.
  let raw: Record<string, unknown> = {};
  const first = await answerBatch(deps, x, async () => (raw = await readJsonBody(x.req)), query);
  const polls = deps.longPolls;
  if (first.reply.status !== 304 || first.wait === 0 || polls === undefined) return first.reply;
  const socket = x.req.socket;
  let gone = socket.destroyed;
  let release: (() => void) | undefined;
  const hangUp = (): void => {
    gone = true;
    release?.();
  };
  // The check that found the change computed the answer of that moment: it is the answer.
  let changed: Extract<Evaluation, { outcome: 'changed' | 'refused' }> | undefined;
  socket.once('close', hangUp);
  try {
    await polls.hold({
      environment: first.environment,
      apiKeyId: first.apiKeyId,
      until: Math.min(x.now.getTime() + first.wait * 1000, first.tokenExpires * 1000),
      unchanged: async () => {
        const evaluation = await evaluate(deps, x, raw, query);
        if (evaluation.outcome !== 'changed' && evaluation.outcome !== 'refused') return true;
        changed = evaluation;
        return false;
      },
      onHeld: (releaseNow) => {
        release = releaseNow;
        if (gone) releaseNow();
      },
    });
  } finally {
    socket.off('close', hangUp);
  }
  if (gone) throw new HttpError(499, 'RWS_CLIENT_CLOSED', 'the client closed the connection while its request was held; nothing was served or charged');
  if (changed !== undefined) {
    Object.assign(x, { now: changed.x.now, audit: changed.x.audit });
    if (changed.outcome === 'refused') throw changed.error;
    return changed.reply;
  }
  x.now = new Date();
  x.audit = {};
  return (await answerBatch(deps, x, raw, query)).reply;
}

/** The request made afresh now: its answer, or its refusal (401, 403, 404), or a passing fault (5xx) that changes nothing. */
type Evaluation =
  | { outcome: 'not modified' | 'fault'; x: Exchange }
  | { outcome: 'changed'; x: Exchange; reply: Reply }
  | { outcome: 'refused'; x: Exchange; error: HttpError };

async function evaluate(deps: HandlerDeps, x: Exchange, raw: Record<string, unknown>, query: string): Promise<Evaluation> {
  const scratch: Exchange = { req: x.req, now: new Date(), audit: {} };
  try {
    const { reply } = await answerBatch(deps, scratch, raw, query);
    return reply.status === 304 ? { outcome: 'not modified', x: scratch } : { outcome: 'changed', x: scratch, reply };
  } catch (error) {
    if (error instanceof HttpError && error.status < 500) return { outcome: 'refused', x: scratch, error };
    return { outcome: 'fault', x: scratch };
  }
}
