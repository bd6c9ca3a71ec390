// The cheap question a limited client is asked before it is refused: does it hold a credential
// that is valid right now? An API key costs one HMAC and one lookup (as any attempt does); a
// token counts only when this server has already verified or issued it (a map lookup), so a
// flood of forged tokens never reaches JWT verification through this path.
import type { IncomingMessage } from 'node:http';
import { authenticateApiKey } from '../../auth/api-keys.js';
import type { Admission, AuthLimits } from './auth-limits.js';
import type { HandlerDeps } from '../handlers.js';
import { HttpError } from '../http-error.js';
import { bearerCredential } from '../request.js';

export async function holdsValidCredential(deps: HandlerDeps, req: IncomingMessage, now: Date): Promise<boolean> {
  if (req.headers.authorization === undefined && deps.console !== undefined) return deps.console.holdsValidSession(req, now);
  let credential: string;
  try {
    credential = bearerCredential(req);
  } catch {
    return false;
  }
  if (!credential.startsWith('rws_sk_')) return deps.tokens.isKnown(credential, now);
  try {
    await authenticateApiKey(deps.state, deps.pepper, credential, now);
    return true;
  } catch (error) {
    if (error instanceof HttpError) return false;
    throw error; // the state is unavailable: answered as such, not as a 429
  }
}

/**
 * Throws the 429 for a limited client without a valid credential; resolves when it may go on.
 * Undefined when it may go on at once (the usual case: no promise to wait for).
 */
export function gateAuthentication(limits: AuthLimits, deps: HandlerDeps, req: IncomingMessage, client: string, now: Date): Promise<void> | undefined {
  const admission = limits.admit(client, now.getTime());
  if (!admission.limited) return undefined;
  return gateLimited(admission, limits, deps, req, now);
}

async function gateLimited(admission: Extract<Admission, { limited: true }>, limits: AuthLimits, deps: HandlerDeps, req: IncomingMessage, now: Date): Promise<void> {
  if (await holdsValidCredential(deps, req, now)) return;
  if (admission.scope === 'server' && limits.takeTrickle(now.getTime())) return;
  const message = admission.scope === 'client' ? 'too many failed authentications from this address' : 'too many failed authentications on this server; retry shortly';
  throw new HttpError(429, 'RWS_RATE_LIMITED', message, { 'retry-after': String(admission.retryAfter) });
}
