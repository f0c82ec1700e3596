import { API_PATHS } from '@quell/contracts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor, SessionIdentity } from '../actor.ts';
import { QuellError } from '../errors.ts';
import type { Throttle } from './rate-limit.ts';

export const SESSION_COOKIE = 'quell_session';

/** Who a bearer token or a session cookie stands for (the auth module's service): null when nobody. */
export interface Authenticator {
  bearer(token: string, sourceIp: string | null): Promise<Actor | null>;
  session(sessionId: string, sourceIp: string | null): Promise<SessionIdentity | null>;
}
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

declare module 'fastify' {
  interface FastifyRequest {
    /** Set for every authenticated request; routes marked public leave it unset. */
    actor: Actor | null;
    session: (SessionIdentity & { sessionId: string }) | null;
  }
  interface FastifyContextConfig {
    public?: boolean;
    /** Authenticate this route although it lies outside /api (e.g. /metrics). */
    authenticate?: boolean;
  }
}

export function readCookie(request: FastifyRequest, name: string): string | null {
  const header = request.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      // A value that is not valid percent-encoding was never issued by us: treat it as no cookie (401), not a crash.
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}

export function setSessionCookie(reply: FastifyReply, value: string, maxAgeSeconds: number, secure: boolean): void {
  reply.header('set-cookie', `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`);
}

/**
 * Resolves the caller on every /api request (and on routes outside it marked
 * `authenticate`): `Authorization: Bearer` first, else the session cookie.
 * Cookie callers must echo their session's CSRF token in `x-csrf-token` on any
 * state-changing request. `throttle` runs once the caller is known and before
 * any refusal, so a caller counts as their token or session, and one who
 * fails to authenticate counts as their address.
 */
export function registerAuth(app: FastifyInstance, auth: Authenticator, throttle?: Throttle): void {
  app.decorateRequest('actor', null);
  app.decorateRequest('session', null);
  // onRequest, before the body is even parsed: a stranger learns nothing about a route's schema.
  app.addHook('onRequest', async (request, reply) => {
    const refusal = await authenticate(request, auth);
    await throttle?.(request, reply);
    if (refusal) throw refusal;
  });
}

/** Sets the request's actor (and session); returns why the request must be refused, if it must. */
async function authenticate(request: FastifyRequest, auth: Authenticator): Promise<QuellError | null> {
  const { config } = request.routeOptions;
  // The API documentation is public, like the OpenAPI document it renders.
  if (config.public || (!config.authenticate && !request.url.startsWith('/api/')) || request.url.startsWith(API_PATHS.docs)) return null;
  const header = request.headers.authorization;
  if (header !== undefined) {
    const token = /^Bearer (.+)$/.exec(header)?.[1];
    const actor = token ? await auth.bearer(token, request.ip) : null;
    if (!actor) return new QuellError('unauthenticated', 'The bearer token is unknown, expired or revoked');
    request.actor = actor;
    return null;
  }
  const sessionId = readCookie(request, SESSION_COOKIE);
  const session = sessionId ? await auth.session(sessionId, request.ip) : null;
  if (!session || !sessionId) return new QuellError('unauthenticated', 'Sign in at POST /api/auth/login or send Authorization: Bearer <token>');
  request.actor = session.actor;
  request.session = { ...session, sessionId };
  if (!SAFE_METHODS.has(request.method) && request.headers['x-csrf-token'] !== session.csrfToken) {
    return new QuellError('csrf_token_invalid', 'Send the csrfToken from the sign-in response in the x-csrf-token header');
  }
  return null;
}

/** The authenticated caller; the onRequest hook guarantees it on non-public routes. */
export function actorOf(request: FastifyRequest): Actor {
  if (!request.actor) throw new QuellError('unauthenticated');
  return request.actor;
}
