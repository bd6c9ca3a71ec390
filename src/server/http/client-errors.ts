// Requests node:http's parser refuses before the app sees them: Content-Length with
// Transfer-Encoding, a doubled or bad Content-Length, no Host, obs-fold, bare LF line ends, an
// unknown method, CONNECT, an unknown Expect, headers over the size limit, and requests cut by
// --headers-timeout or --request-timeout. node:http's own answer is a bare status line with no
// body; this one is the same status with the JSON error every other answer has, and the same
// security headers. A request without Host, or with two, is refused here too, not by node:http,
// and so is a transfer coding other than chunked, which node:http takes (see refuseBadFraming).
import { type IncomingMessage, maxHeaderSize, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorResponse, HttpError } from './http-error.js';
import type { AnswerOrder } from './in-order.js';
import { headerCount, SECURITY_HEADERS, sendJson } from './request.js';

const TOO_LARGE = answer(new HttpError(431, 'RWS_HEADERS_TOO_LARGE', `request headers are limited to ${maxHeaderSize} bytes`));
const TIMED_OUT = answer(new HttpError(408, 'RWS_REQUEST_TIMEOUT', 'the request was not received in time'));
const MALFORMED = answer(new HttpError(400, 'RWS_BAD_REQUEST', 'malformed HTTP request'));
const NO_HOST_ERROR = new HttpError(400, 'RWS_BAD_REQUEST', 'malformed HTTP request: HTTP/1.1 needs a Host header');
const EXPECTATION_ERROR = new HttpError(417, 'RWS_BAD_REQUEST', 'the only Expect understood is 100-continue');
const TWO_HOSTS_ERROR = new HttpError(400, 'RWS_BAD_REQUEST', 'malformed HTTP request: more than one Host header');
const CODING_ERROR = new HttpError(501, 'RWS_BAD_REQUEST', 'the only transfer coding understood is chunked');

/**
 * The server's `clientError` listener: answers as node:http's default would, then closes the
 * connection; but only once the answers to the requests pipelined ahead of the bad one are out.
 * Those requests have run (a use charged, a row written): cutting the connection at once lost
 * their answers, and the refusal went out in place of the first.
 */
export function clientErrorListener(order: AnswerOrder): (error: Error & { code?: string }, socket: Duplex) => void {
  return (error, socket) => {
    // A reset peer reads nothing.
    if (error.code === 'ECONNRESET') socket.destroy();
    else refuseAfter(order, socket, error.code === 'HPE_HEADER_OVERFLOW' ? TOO_LARGE : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? TIMED_OUT : MALFORMED);
  };
}

/**
 * The server's `connect` listener. Without one node:http destroys the connection on a CONNECT at
 * once, answers ahead of it included, and says nothing; this is no proxy, so CONNECT is refused as
 * the parser's refusals are, after those answers.
 */
export function connectListener(order: AnswerOrder): (req: IncomingMessage, socket: Duplex) => void {
  return (_req, socket) => refuseAfter(order, socket, MALFORMED);
}

function refuseAfter(order: AnswerOrder, socket: Duplex, text: string): void {
  const ahead = order.settled(socket);
  if (ahead === undefined) refuse(socket, text);
  else void ahead.then(() => refuse(socket, text));
}

/**
 * Requests framed in a way node:http lets through but this server refuses, before anything runs.
 *
 * RFC 9112 §3.2: an HTTP/1.1 request without Host, and any request with more than one, is a 400
 * (node:http keeps the first Host and drops the others, while a proxy in front may route by the
 * last; the console's Origin check compares with Host). node:http's own check
 * (`requireHostHeader`, turned off where this is used) answers with no body, and still emits
 * `request` for a request pipelined behind it in the same packet, whose answer is never sent.
 *
 * RFC 9112 §6.1: a transfer coding the server does not understand SHOULD be a 501. node:http
 * reads any list that ends in chunked (`gzip, chunked`, or two Transfer-Encoding headers) as
 * chunked alone and hands the app the body still gzip-coded, or read as JSON although the client
 * said it was something else. (Chunked twice, `chunked, chunked`, is node:http's 400.)
 *
 * Here the connection is refused and closed, and no request that came on it after is run.
 */
export function refuseBadFraming(app: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  const refused = new WeakSet<Duplex>();
  return (req, res) => {
    // Not run, and never answered: the connection closes once the refusal ahead of it is sent.
    if (refused.has(req.socket)) return;
    const error = framingError(req);
    if (error !== undefined) {
      refused.add(req.socket);
      // Through the response, not the socket: node:http sends pipelined answers in order, so a
      // request ahead of this one still waiting for its commit gets its own answer first (written
      // straight to the socket, this refusal would have taken that answer's place).
      const { status, body } = errorResponse(error);
      sendJson(res, status, body, { connection: 'close' });
      return;
    }
    app(req, res);
  };
}

function framingError(req: IncomingMessage): HttpError | undefined {
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) return NO_HOST_ERROR;
  if (headerCount(req.rawHeaders, 'host') > 1) return TWO_HOSTS_ERROR;
  // node:http joins repeated headers with ", " and trims each value.
  const coding = req.headers['transfer-encoding'];
  if (coding !== undefined && coding.toLowerCase() !== 'chunked') return CODING_ERROR;
  return undefined;
}

/**
 * The server's `checkExpectation` listener: an `Expect` other than 100-continue (RFC 9110 §10.1.1
 * allows 417). node:http's own 417 had no body, no security headers and no `Cache-Control`. The
 * body is never read, so the connection closes, and nothing behind it runs.
 */
export function refuseExpectation(_req: IncomingMessage, res: ServerResponse): void {
  const { status, body } = errorResponse(EXPECTATION_ERROR);
  sendJson(res, status, body, { connection: 'close' });
}

/** Writes `answer` unless an answer has begun on this connection (bytes after a partial one would corrupt it), then closes it. */
function refuse(socket: Duplex, text: string): void {
  if (socket.writable && (socket as Socket).bytesWritten === 0) socket.write(text);
  // Nothing more is read from this connection: the parser cannot go on after its error, and no
  // request behind a refused one may run.
  socket.destroy();
}

function answer(error: HttpError): string {
  const { status, body } = errorResponse(error);
  const text = JSON.stringify(body);
  const headers = { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), connection: 'close' };
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${lines.join('')}\r\n${text}`;
}
