import { createHash } from 'node:crypto';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import { API_PATHS } from '@quell/contracts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RateLimit } from '../config.ts';
import { QuellError } from '../errors.ts';

/** Called once the caller is known (or known to be nobody), before any refusal of theirs. */
export type Throttle = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * Agents speak to /agent/… (and over the WebSocket upgrade, which never reaches
 * the router): their traffic is paced by the server itself, and many of them
 * may share one address. Health probes must answer whatever else happens.
 */
function isExempt(route: string | undefined): boolean {
  return route !== undefined && (route.startsWith('/agent/') || route === API_PATHS.healthz || route === API_PATHS.readyz);
}

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * Who a request counts against: the API token or session it authenticated
 * with, else its address (IPv6 by /64, so one host cannot spread itself over
 * its whole prefix). Credentials are hashed: the limiter keeps no secret.
 */
function callerKey(request: FastifyRequest): string {
  if (request.actor?.kind === 'token' && request.headers.authorization) return `token:${sha256(request.headers.authorization)}`;
  if (request.session) return `session:${sha256(request.session.sessionId)}`;
  return `address:${normalizeIP(request.ip)}`;
}

/**
 * The general limit on requests per caller, fixed windows of `windowSeconds`
 * (docs/throttling.md). Every counted response says where the caller stands
 * in `RateLimit-*` headers; a refusal is a 429 `rate_limited` with
 * `Retry-After`. In memory: each replica counts on its own.
 */
export async function registerRateLimit(app: FastifyInstance, limit: RateLimit): Promise<Throttle> {
  await app.register(rateLimit, { global: false, max: limit.max, timeWindow: limit.windowSeconds * 1000, keyGenerator: callerKey });
  const count = app.createRateLimit();
  const policy = `${limit.max};w=${limit.windowSeconds}`;
  return async (request, reply) => {
    if (isExempt(request.routeOptions.url)) return;
    const state = await count(request);
    if (state.isAllowed) return;
    reply.header('ratelimit-policy', policy);
    reply.header('ratelimit-limit', state.max);
    reply.header('ratelimit-remaining', state.remaining);
    reply.header('ratelimit-reset', state.ttlInSeconds);
    if (state.isExceeded) {
      throw new QuellError('rate_limited', `More than ${state.max} requests in ${limit.windowSeconds} s from this caller; try again in ${state.ttlInSeconds} s`, { retryAfter: state.ttlInSeconds });
    }
  };
}
