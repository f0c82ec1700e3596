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
};

export function sendProblem(reply: FastifyReply, request: FastifyRequest, code: ErrorCode, detail: string, extra?: Pick<Problem, 'actions'>): FastifyReply {
  const { status, title } = ERRORS[code];
  const body: Problem = { type: `https://quell.dev/problems/${code}`, title, status, code, detail, requestId: request.id, ...extra };
  return reply.code(status).type('application/problem+json').send(body);
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
  if (error.validation) return sendProblem(reply, request, 'validation_failed', `${error.validationContext ?? 'request'}: ${error.message}`);
  const mapped = error.code ? FASTIFY_CODES[error.code] : undefined;
  if (mapped) return sendProblem(reply, request, mapped, error.message);
  if (error instanceof SyntaxError || (error.statusCode === 400 && /JSON/i.test(error.message))) return sendProblem(reply, request, 'malformed_json', 'The body is not valid JSON');
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    request.log.warn({ err: error }, 'client error without a catalogue code');
    return sendProblem(reply, request, error.statusCode === 413 ? 'payload_too_large' : error.statusCode === 415 ? 'unsupported_media_type' : 'validation_failed', error.message);
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(reply, request, 'internal_error', 'Internal error; the server log has the details under this requestId');
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, 'route_not_found', `${request.method} ${request.url.split('?')[0]} is not a route`));
}
