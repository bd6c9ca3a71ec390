// Reading requests and writing responses: bounded JSON bodies, bearer credentials, JSON answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { duplicateName } from '../../json-duplicate-names.js';
import { inviteBody } from './expect-continue.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './json-depth.js';
import { badRequest, HttpError, NO_CREDENTIAL } from './http-error.js';

export const MAX_BODY_BYTES = 64 * 1024;

/**
 * JSON, optionally saying it is UTF-8: RFC 9110 §8.3.1 makes `charset=utf-8`, `CHARSET=UTF-8` and
 * `charset="utf-8"` the same parameter. No other charset or parameter: the body is read as UTF-8.
 */
const JSON_MEDIA_TYPE = /^application\/json[ \t]*(?:;[ \t]*charset=(?:utf-8|"utf-8")[ \t]*)?$/i;

const tooLarge = (): HttpError =>
  new HttpError(413, 'RWS_BODY_TOO_LARGE', `request bodies are limited to ${MAX_BODY_BYTES} bytes`, { connection: 'close' });

/** The request's JSON object body; `{}` when a body is optional and none was sent. */
export async function readJsonBody(req: IncomingMessage, options: { optional?: boolean } = {}): Promise<Record<string, unknown>> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const empty = !chunked && (length === undefined || length === '0');
  if (empty && options.optional) return {};
  const type = req.headers['content-type'];
  if (!empty && !JSON_MEDIA_TYPE.test(type ?? '')) {
    if (options.optional) return await drain(req).then(() => ({}));
    throw new HttpError(415, 'RWS_UNSUPPORTED_MEDIA_TYPE', unsupportedType(type));
  }
  if (!empty && isCoded(req)) {
    if (options.optional) return await drain(req).then(() => ({}));
    // RFC 9110 §15.5.16: a coding refused is answered with the codings taken (none but identity).
    throw new HttpError(415, 'RWS_UNSUPPORTED_MEDIA_TYPE', 'a body with a Content-Encoding is not read: send it as plain JSON, without one', { 'accept-encoding': 'identity' });
  }
  if (length !== undefined && Number(length) > MAX_BODY_BYTES) throw tooLarge();
  const text = await readText(req);
  if (options.optional && text === '') return {};
  if (text === '') throw badRequest('the request has no body; send a JSON object');
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw badRequest(`the body nests deeper than ${MAX_JSON_DEPTH} levels of objects and arrays`);
  let value: unknown;
  try {
    value = JSON.parse(text, wellFormed);
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw badRequest('the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the body must be a JSON object');
  // JSON.parse keeps the last of a name given twice: `{"admin": false, …, "admin": true}` would be
  // one key to a proxy or log that reads the first and another to us. Refused, never guessed.
  if (duplicateName(text) !== undefined) throw badRequest('the body names a field twice (in one object); send each field once');
  return value as Record<string, unknown>;
}

/**
 * A body that says it is compressed (`Content-Encoding: gzip`), which this server never decodes:
 * read as JSON, a plain body labelled gzip was taken, though a proxy or a log reading it as the
 * client said would see other bytes. `identity` (no coding, RFC 9110 §8.4.1) is taken.
 */
function isCoded(req: IncomingMessage): boolean {
  const coding = req.headers['content-encoding'];
  return coding !== undefined && !/^[ \t]*identity[ \t]*$/i.test(coding);
}

/** What to send instead, by what came: the type is not quoted back (it is the client's text). */
function unsupportedType(type: string | undefined): string {
  if (type === undefined) return 'the body has no Content-Type; send it as application/json';
  // curl's -d sends this unless told otherwise: the likeliest 415 of all.
  if (/^application\/x-www-form-urlencoded\b/i.test(type)) return "a form body is not read (curl -d sends one): send the body as application/json (curl -H 'Content-Type: application/json')";
  if (/^application\/json[ \t]*;/i.test(type)) return 'the body is read as UTF-8: send application/json with charset=utf-8 or no parameter';
  return 'send the body as application/json';
}

/**
 * A string escaped into a lone surrogate (`"\ud800"`) is valid JSON but not text: stored as UTF-8
 * it becomes U+FFFD, so an audit row holding it would no longer match its own hash.
 */
const LONE_SURROGATE = /\p{Cs}/u;

function wellFormed(_key: string, value: unknown): unknown {
  if (typeof value === 'string' && LONE_SURROGATE.test(value)) throw badRequest('the body holds a string that is not valid Unicode (a lone surrogate escape)');
  return value;
}

async function readText(req: IncomingMessage): Promise<string> {
  // The one place a body is read: a client waiting on `Expect: 100-continue` is told to send it now.
  inviteBody(req);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    // The stream ends with "aborted" whether the client hung up or --request-timeout cut it: no
    // answer can reach it, and it is not a fault of the server's (the row would say 500).
    throw new HttpError(499, 'RWS_CLIENT_CLOSED', 'the connection ended before the request body did; nothing was done');
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    return decoder.decode(Buffer.concat(chunks));
  } catch {
    throw badRequest('the body is not valid UTF-8');
  }
}

async function drain(req: IncomingMessage): Promise<void> {
  await readText(req);
}

/**
 * Whether some of the request's body is still to come. A request that declares none is not: one
 * refused in the tick it arrived in (a 404, a 405) reads `complete` false only because node:http
 * marks it complete after the `request` event, and closing its connection dropped the keep-alive
 * and every request pipelined behind it (RFC 9112 §9.3: a connection persists by default).
 */
export function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0);
}

/**
 * The credential of `Authorization: Bearer <credential>`, exactly as sent. RFC 6750 §2.1 allows
 * one or more spaces after the scheme (1*SP); nothing inside the credential is trimmed. Two
 * Authorization headers are refused: node:http keeps the first and drops the rest, so a client
 * whose library added its own beside the one it meant would act (and be audited) as the other.
 */
export function bearerCredential(req: IncomingMessage): string {
  if (headerCount(req.rawHeaders, 'authorization') > 1) throw new HttpError(401, 'RWS_AUTH_FAILED', 'send one Authorization header, not several', NO_CREDENTIAL);
  const credential = bearerOf(req.headers.authorization);
  // No Bearer credential was sent (none, or another scheme): the bare challenge.
  if (credential === undefined) throw new HttpError(401, 'RWS_AUTH_FAILED', 'send the credential as Authorization: Bearer <credential>', NO_CREDENTIAL);
  return credential;
}

/**
 * What /^Bearer +([^ ]+)$/i captures, found without a regular expression (a token is some 400
 * characters, matched on every read): the scheme in any case, spaces, then no space to the end.
 */
export function bearerOf(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 8 || header.charCodeAt(6) !== 0x20 || header.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  let start = 7;
  while (header.charCodeAt(start) === 0x20) start++;
  if (start === header.length || header.indexOf(' ', start) !== -1) return undefined;
  return header.slice(start);
}

/**
 * On every answer, JSON or console page alike: nothing may run, frame or be referred from it but
 * the console's own files (the policy the console needs, and stricter than any JSON needs).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export function sendText(res: ServerResponse, status: number, text: { body: string; contentType: string }, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, ...SECURITY_HEADERS, 'content-type': text.contentType, 'content-length': Buffer.byteLength(text.body) });
  res.end(text.body);
}

const JSON_HEADERS = Object.entries(SECURITY_HEADERS).flat().concat('content-type', 'application/json; charset=utf-8');

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  if (body === undefined) {
    res.writeHead(status, { ...headers, ...SECURITY_HEADERS });
    res.end('');
    return;
  }
  const text = JSON.stringify(body);
  // The usual answer (JSON, no headers of its own) as a flat list made once.
  if (headers === undefined) res.writeHead(status, [...JSON_HEADERS, 'content-length', String(Buffer.byteLength(text))]);
  else res.writeHead(status, { ...headers, ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * How many headers named `name` (lower case) came: a scan of the raw list, cheaper on every
 * request than `headersDistinct`, which copies them all. node:http keeps only the first of some
 * (Host, Authorization), so a second one would otherwise go unseen.
 */
export function headerCount(raw: readonly string[], name: string): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const header = raw[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) count++;
  }
  return count;
}
