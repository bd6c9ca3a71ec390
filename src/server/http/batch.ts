// `POST /api/v1/vault/secrets/batch`, with its long-poll: a request that would get a 304 and asks
// `?wait=N` is held until the answer it would get changes (a 200 with other values, or a refusal:
// the token revoked, the secret removed), or N seconds have passed (then 304), or the token's
// lifetime ends (304 while it is still good, rather than a 401 a watcher would take for a
// revocation), or the server closes (the answer of that moment). The answer is then computed
// afresh, as for a new request: the use is charged and the audit row written when it is given.
// A client that hangs up while held is not charged; its row says so (499 RWS_CLIENT_CLOSED).
import { answerBatch, type Exchange, type HandlerDeps, type Reply } from './handlers.js';
import { HttpError } from './http-error.js';
import { readJsonBody } from './request.js';

export async function batchSecrets(deps: HandlerDeps, x: Exchange, query: string): Promise<Reply> {
  const raw = await readJsonBody(x.req);
  const first = await answerBatch(deps, x, raw, query);
  const polls = deps.longPolls;
  if (first.reply.status !== 304 || first.wait === 0 || polls === undefined) return first.reply;
  const socket = x.req.socket;
  let gone = socket.destroyed;
  const hangUp = (): void => {
    gone = true;
    release?.();
  };
  let release: (() => void) | undefined;
  socket.once('close', hangUp);
  try {
    await polls.hold({
      environment: first.environment,
      apiKeyId: first.apiKeyId,
      until: Math.min(x.now.getTime() + first.wait * 1000, first.tokenExpires * 1000),
      unchanged: () => stillNotModified(deps, x, raw, query),
      onHeld: (releaseNow) => {
        release = releaseNow;
        if (gone) releaseNow();
      },
    });
  } finally {
    socket.off('close', hangUp);
  }
  if (gone) throw new HttpError(499, 'RWS_CLIENT_CLOSED', 'the client closed the connection while its request was held; nothing was served or charged');
  x.now = new Date();
  x.audit = {};
  return (await answerBatch(deps, x, raw, query)).reply;
}

/** Would the request, made afresh now, still get its 304? A refusal (401, 403, 404) is a change; a fault (5xx) is not. */
async function stillNotModified(deps: HandlerDeps, x: Exchange, raw: Record<string, unknown>, query: string): Promise<boolean> {
  const scratch: Exchange = { req: x.req, now: new Date(), audit: {} };
  try {
    return (await answerBatch(deps, scratch, raw, query)).reply.status === 304;
  } catch (error) {
    return !(error instanceof HttpError && error.status < 500);
  }
}
