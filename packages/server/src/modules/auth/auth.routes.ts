import { API_PATHS, LoginBodySchema, OkSchema, SessionInfoSchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { QuellError } from '../../errors.ts';
import { actorOf, setSessionCookie } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import { SESSION_TTL_MS, type AuthService } from './auth.service.ts';

const tags = ['Auth'];

export const authRoutes: FastifyPluginAsyncTypebox<{ auth: AuthService; secureCookies: boolean }> = async (app, { auth, secureCookies }) => {
  app.post(API_PATHS.login, {
    config: { public: true },
    schema: { tags, summary: 'Sign in; sets an HTTP-only session cookie and returns the CSRF token', body: LoginBodySchema, response: { 200: SessionInfoSchema, ...problemResponses } },
  }, async (request, reply) => {
    const { sessionId, identity } = await auth.login(request.body, request.ip);
    setSessionCookie(reply, sessionId, SESSION_TTL_MS / 1000, secureCookies);
    return { user: identity.user, permissions: identity.permissions, csrfToken: identity.csrfToken };
  });

  app.post(API_PATHS.logout, {
    schema: { tags, summary: 'Sign out and end the session', response: { 200: OkSchema, ...problemResponses } },
  }, async (request, reply) => {
    if (!request.session) throw new QuellError('unauthenticated', 'Sign-out ends a cookie session; API tokens are revoked through /api/tokens');
    await auth.logout(request.session.sessionId, actorOf(request));
    setSessionCookie(reply, '', 0, secureCookies);
    return { ok: true };
  });

  app.get(API_PATHS.me, {
    schema: { tags, summary: 'The signed-in user, permissions and CSRF token', response: { 200: SessionInfoSchema, ...problemResponses } },
  }, async (request) => {
    if (!request.session) throw new QuellError('unauthenticated', 'Only cookie sessions have a CSRF token');
    return { user: request.session.user, permissions: request.session.permissions, csrfToken: request.session.csrfToken };
  });
};
