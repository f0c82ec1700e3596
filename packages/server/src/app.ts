import { randomUUID } from 'node:crypto';
import { TypeBoxValidatorCompiler, registerAjvFormats } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { registerAuth } from './plugins/auth.ts';
import { registerErrorHandling } from './plugins/errors.ts';
import { type Metrics } from './plugins/metrics.ts';
import { registerOpenApi } from './plugins/openapi.ts';
import type { Services } from './services.ts';
import { actionsRoutes } from './modules/actions/actions.routes.ts';
import { auditRoutes } from './modules/audit/audit.routes.ts';
import { authRoutes } from './modules/auth/auth.routes.ts';
import { devicesRoutes } from './modules/devices/devices.routes.ts';
import { healthRoutes } from './modules/health/health.routes.ts';
import { settingsRoutes } from './modules/settings/settings.routes.ts';
import { tokensRoutes } from './modules/tokens/tokens.routes.ts';
import { usersRoutes } from './modules/users/users.routes.ts';

export interface AppOptions {
  services: Services;
  metrics: Metrics;
  publicUrl: string;
  /** A pino logger; without one the app logs nothing (tests). */
  logger?: FastifyBaseLogger;
  /** Read by /readyz; the server flips it off when shutdown begins. */
  isReady?: () => boolean;
}

registerAjvFormats();

/** Builds the HTTP app around ready services; it never listens (server.ts does). */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { services, metrics } = options;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    bodyLimit: 256 * 1024,
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
    },
    routerOptions: { ignoreTrailingSlash: true },
  });
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    if (!request.url.startsWith(`/api/docs`)) reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpDuration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  registerErrorHandling(app);
  registerAuth(app, services.auth);
  await registerOpenApi(app, options.publicUrl);

  await app.register(healthRoutes, { store: services.store, metrics, isReady: options.isReady ?? (() => true) });
  await app.register(authRoutes, { auth: services.auth, secureCookies: options.publicUrl.startsWith('https://') });
  await app.register(actionsRoutes, { actions: services.actions });
  await app.register(devicesRoutes, { devices: services.devices });
  await app.register(usersRoutes, { users: services.users });
  await app.register(tokensRoutes, { tokens: services.tokens });
  await app.register(settingsRoutes, { settings: services.settings });
  await app.register(auditRoutes, { audit: services.audit });
  return app;
}
