// Reading an answer's body: JSON only, at most MAX_RESPONSE_BYTES, and never buffered past that
// limit (a declared Content-Length over it is refused before reading; a body that keeps coming
// is cut off at the limit).
import type { Dispatcher } from 'undici';
import { duplicateName } from '../json-duplicate-names.js';
import { badResponse, safeServerCode } from './errors.js';
import { parseRefusal, type Refusal } from './refusal.js';

export const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
/** Error answers are only read for their code. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

const JSON_TYPE = /^application\/json\s*(;.*)?$/i;

type Body = Dispatcher.ResponseData['body'];
type Headers = Dispatcher.ResponseData['headers'];

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function declaredLength(headers: Headers): number | undefined {
  const value = header(headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Stops reading and drops the connection; undici reports that as an 'error' nobody needs. */
function discard(body: Body): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * The body's bytes, or undefined (and the stream destroyed) once it passes `limit`. Read through
 * its events rather than an async iterator: the same result, without running Node's stream
 * iterator code for the first time on every vault run (≈3 ms here).
 */
function readLimited(body: Body, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    // Ended or destroyed before it was read: no event would come (undici never does this today).
    if (body.destroyed || body.readableEnded) {
      reject(body.errored ?? prematureClose());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      finish();
    };
    body.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        settle(() => resolve(undefined));
        discard(body);
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => settle(() => resolve(Buffer.concat(chunks))));
    body.once('error', (error: Error) => settle(() => reject(error)));
    // Closed without an end or an error: as the stream iterator would say it.
    body.once('close', () => settle(() => reject(prematureClose())));
  });
}

/** What Node's stream iterator says of a stream that closed without an end or an error. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

function parseJson(bytes: Buffer): { ok: true; value: unknown; text: string } | { ok: false } {
  try {
    // Neither error is kept: V8's JSON.parse message quotes the input.
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return { ok: true, value: JSON.parse(text), text };
  } catch {
    return { ok: false };
  }
}

/** The JSON value of a successful answer; `undefined` for an empty one (204). */
export async function readJsonBody(response: Dispatcher.ResponseData, origin: string): Promise<unknown> {
  const { body, headers, statusCode } = response;
  if (statusCode === 204) {
    await body.dump({ limit: MAX_ERROR_BODY_BYTES });
    return undefined;
  }
  if (!JSON_TYPE.test(header(headers, 'content-type') ?? '')) {
    discard(body);
    throw badResponse(origin, 'its content type is not application/json');
  }
  const declared = declaredLength(headers);
  if (declared !== undefined && declared > MAX_RESPONSE_BYTES) {
    discard(body);
    throw badResponse(origin, `its body is over the ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB limit`);
  }
  const bytes = await readLimited(body, MAX_RESPONSE_BYTES);
  if (bytes === undefined) throw badResponse(origin, `its body is over the ${MAX_RESPONSE_BYTES / 1024 / 1024} MiB limit`);
  const parsed = parseJson(bytes);
  if (!parsed.ok) throw badResponse(origin, 'its body is not valid JSON');
  if (duplicateName(parsed.text) !== undefined) throw badResponse(origin, 'its body names a field twice in one object');
  return parsed.value;
}

export interface ErrorAnswer {
  code: string | undefined;
  refusal: Refusal | undefined;
}

/**
 * The server's `error.code` of a failed answer, when it is safe to repeat, and what a 403/404
 * message says in checked names (see refusal.ts); the rest of the body is discarded.
 */
export async function readErrorAnswer(response: Dispatcher.ResponseData): Promise<ErrorAnswer> {
  const none = { code: undefined, refusal: undefined };
  const { body, headers } = response;
  const declared = declaredLength(headers);
  if (!JSON_TYPE.test(header(headers, 'content-type') ?? '') || (declared !== undefined && declared > MAX_ERROR_BODY_BYTES)) {
    discard(body);
    return none;
  }
  try {
    const bytes = await readLimited(body, MAX_ERROR_BODY_BYTES);
    const parsed = bytes === undefined ? undefined : parseJson(bytes);
    if (!parsed?.ok || typeof parsed.value !== 'object' || parsed.value === null) return none;
    const error = (parsed.value as { error?: unknown }).error;
    if (typeof error !== 'object' || error === null) return none;
    const { code, message } = error as { code?: unknown; message?: unknown };
    return { code: safeServerCode(code), refusal: parseRefusal(response.statusCode, message) };
  } catch {
    // The status already says what went wrong; a broken error body adds nothing.
    return none;
  }
}
