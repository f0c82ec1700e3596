import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, type ErrorCode, type Problem } from '@quell/contracts';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { QuellError } from '../errors.ts';

/** Maps Fastify's own client errors onto our codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'malformed_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  // Raised by the router before any route runs, e.g. `/api/actions/%` or an over-long id.
  FST_ERR_BAD_URL: 'validation_failed',
  FST_ERR_MAX_PARAM_LENGTH: 'validation_failed',
  // The client closed the connection while its body was being read: nobody may be left to answer, but the log says what it was.
  ECONNRESET: 'request_aborted',
};

function problem(code: ErrorCode, detail: string, requestId: string, extra?: Pick<Problem, 'actions'>): Problem {
  const { status, title } = ERRORS[code];
  return { type: `https://quell.dev/problems/${code}`, title, status, code, detail, requestId, ...extra };
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, code: ErrorCode, detail: string, extra?: Pick<Problem, 'actions'>): FastifyReply {
  return reply.code(ERRORS[code].status).type('application/problem+json').send(problem(code, detail, request.id, extra));
}

/**
 * One handler, one shape: every error leaves as application/problem+json with
 * a stable code. Anything unexpected becomes a bare 500 and a log line; its
 * message never reaches the client.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof QuellError) {
    if (error.retryAfter !== undefined) reply.header('retry-after', String(error.retryAfter));
    return sendProblem(reply, request, error.code, error.message, error.actions ? { actions: error.actions } : undefined);
  }
  if (error.validation) {
    // Fastify's message already names the part (`querystring/limit must be …`): said once.
    const part = error.validationContext ?? 'request';
    return sendProblem(reply, request, 'validation_failed', error.message.startsWith(part) ? error.message : `${part}: ${error.message}`);
  }
  const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
  if (mapped) return sendProblem(reply, request, mapped, mapped === 'request_aborted' ? 'The connection closed before the whole body arrived' : error.message);
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) return sendProblem(reply, request, 'malformed_json', 'The body is not valid JSON');
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    request.log.warn({ err: error }, 'client error without a catalogue code');
    return sendProblem(reply, request, error.statusCode === 413 ? 'payload_too_large' : error.statusCode === 415 ? 'unsupported_media_type' : 'validation_failed', error.message);
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(reply, request, 'internal_error', 'Internal error; the server log has the details under this requestId');
}

/** What Node's HTTP parser refuses before Fastify sees a request (its `clientError` event), by Node's error code. */
function clientErrorProblem(nodeCode: string | undefined): { code: ErrorCode; detail: string } {
  switch (nodeCode) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'request_timeout', detail: 'The request did not arrive in time' };
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'header_too_large', detail: 'The request line and headers exceed 16 KiB: shorten the URL or query string, or send fewer or smaller headers' };
    case 'HPE_INVALID_EOF_STATE':
      return { code: 'request_aborted', detail: 'The connection was closed before the whole request arrived' };
    default:
      return { code: 'malformed_request', detail: `The request is not well-formed HTTP/1.1 (${nodeCode ?? 'unknown parser error'})` };
  }
}

/**
 * Answers what Node's HTTP parser refuses (over-long URL or headers, timeouts,
 * broken framing) in the one problem shape, written straight to the socket:
 * there is no request object yet. Bound to the Fastify instance by Fastify.
 */
export function handleClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const { code, detail } = clientErrorProblem(error.code);
  const requestId = randomUUID();
  const body = JSON.stringify(problem(code, detail, requestId));
  const { status } = ERRORS[code];
  this.log.debug({ err: error, requestId, code }, 'request refused by the HTTP parser');
  // As Node itself does: only when no response has begun on this connection.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    socket.write([
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}`, 'content-type: application/problem+json', `content-length: ${Buffer.byteLength(body)}`,
      `x-request-id: ${requestId}`, 'x-content-type-options: nosniff', 'connection: close', '', body,
    ].join('\r\n'));
  }
  socket.destroy(error);
}

/**
 * Which methods each route answers, to tell a wrong method (405, with `Allow`)
 * from a path no route has (404).
 */
function createRouteTable() {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    add(url: string, method: string | string[]): void {
      // The console's fallback answers GET on every path; it does not make other methods on those paths "not allowed".
      if (url === '/*') return;
      const source = url.split('/').map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : escape(segment))).join('/');
      routes.push({ pattern: new RegExp(`^${source}/?$`), methods: [method].flat() });
    },
    allowed(path: string): string[] {
      const methods = new Set(routes.filter((route) => route.pattern.test(path)).flatMap((route) => route.methods));
      if (methods.has('GET')) methods.add('HEAD');
      return [...methods].sort();
    },
  };
}

/**
 * Bodies declared JSON must be UTF-8 (RFC 8259 §8.1). Fastify's own parser
 * decodes leniently and would store U+FFFD in place of the bytes sent; this one
 * refuses them, then parses as Fastify does (with its prototype-poisoning guard).
 */
function refuseNonUtf8Json(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  const decoder = new TextDecoder('utf-8', { fatal: true });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = decoder.decode(body as Buffer);
    } catch {
      done(new QuellError('malformed_json', 'The body is not valid UTF-8'), undefined);
      return;
    }
    parseJson(request, text, done);
  });
}

export function registerErrorHandling(app: FastifyInstance): void {
  const routes = createRouteTable();
  app.addHook('onRoute', (route) => routes.add(route.url, route.method));
  refuseNonUtf8Json(app);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = routes.allowed(path);
    if (allowed.length === 0) return sendProblem(reply, request, 'route_not_found', `${request.method} ${path} is not a route`);
    reply.header('allow', allowed.join(', '));
    return sendProblem(reply, request, 'method_not_allowed', `${path} answers ${allowed.join(', ')}, not ${request.method}`);
  });
}
