import { randomUUID } from 'node:crypto';
import { type Server as HttpServer, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Format, registerAjvFormats } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerFactory } from 'fastify';
import { QuellError } from './errors.ts';
import { registerAuth } from './plugins/auth.ts';
import { handleClientError, handleError, registerErrorHandling } from './plugins/errors.ts';
import { type Metrics } from './plugins/metrics.ts';
import { registerOpenApi } from './plugins/openapi.ts';
import { registerRateLimit } from './plugins/rate-limit.ts';
import { validatorCompiler } from './plugins/validation.ts';
import { RATE_LIMIT_DEFAULTS, type RateLimit } from './config.ts';
import type { Services } from './services.ts';
import type { AgentGateway } from './modules/agents/agents.gateway.ts';
import { agentsRoutes } from './modules/agents/agents.routes.ts';
import { alertsRoutes } from './modules/alerts/alerts.routes.ts';
import { incidentsRoutes } from './modules/incidents/incidents.routes.ts';
import { indicatorsRoutes } from './modules/indicators/indicators.routes.ts';
import { investigationsRoutes } from './modules/investigations/investigations.routes.ts';
import { actionsRoutes } from './modules/actions/actions.routes.ts';
import { auditRoutes } from './modules/audit/audit.routes.ts';
import { authRoutes } from './modules/auth/auth.routes.ts';
import { consoleRoutes } from './modules/console/console.routes.ts';
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
  /** The agents' WebSocket endpoint, attached to the HTTP server's upgrades. */
  gateway?: AgentGateway;
  /** Serve HTTPS (and WSS for agents) with this key and certificate, PEM. */
  tls?: { key: string; cert: string };
  /** The built web console (default packages/console/dist). */
  consoleDir?: string;
  /** Requests per caller and window (default RATE_LIMIT_DEFAULTS); null turns the limit off. */
  rateLimit?: RateLimit | null;
  /** Serve /metrics to anyone; by default it needs the `metrics:read` permission. */
  metricsPublic?: boolean;
  /** Time to receive a whole request, headers and body (default 5 minutes); one still arriving then is answered 408. */
  requestTimeoutMs?: number;
}

registerAjvFormats();
// RFC 3339 allows a leap second (`…T23:59:60Z`) that a Date cannot hold; a date-time we accept must name an instant we can store and compare.
const isRfc3339DateTime = Format.Get('date-time')!;
Format.Set('date-time', (value) => isRfc3339DateTime(value) && !Number.isNaN(Date.parse(value)));

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
    // The router's own rejections (a malformed or over-long path) take the one problem shape too, and so do Node's parser's.
    frameworkErrors: handleError,
    clientErrorHandler: handleClientError,
    serverFactory: nodeServer(options.tls ?? null, options.requestTimeoutMs ?? 5 * 60_000),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    // The console's pages replace this with their own policy (modules/console/console.routes.ts).
    if (!request.url.startsWith(`/api/docs`)) reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
  });
  // Text neither store keeps as sent is refused alike on both, as a 400: PostgreSQL cannot hold U+0000, and an
  // unpaired surrogate is written as U+FFFD, so the row (and the audit entry's hash) would no longer match what was sent.
  app.addHook('preValidation', async (request) => {
    if (!isValidQueryEncoding(request.url)) throw new QuellError('validation_failed', 'querystring is not valid percent-encoded UTF-8');
    for (const [part, value] of [['body', request.body], ['querystring', request.query], ['params', request.params]] as const) {
      const at = findUnstorableText(value, part);
      if (at !== null) throw new QuellError('validation_failed', `${at} contains a NUL character (U+0000) or an unpaired UTF-16 surrogate`);
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpDuration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });

  registerErrorHandling(app);
  const rateLimit = options.rateLimit === undefined ? RATE_LIMIT_DEFAULTS : options.rateLimit;
  registerAuth(app, services.auth, rateLimit ? await registerRateLimit(app, rateLimit) : undefined);
  await registerOpenApi(app, options.publicUrl);

  await app.register(healthRoutes, { store: services.store, metrics, metricsPublic: options.metricsPublic ?? false, isReady: options.isReady ?? (() => true) });
  await app.register(authRoutes, { auth: services.auth, secureCookies: options.publicUrl.startsWith('https://') });
  await app.register(actionsRoutes, { actions: services.actions });
  await app.register(devicesRoutes, { devices: services.devices });
  await app.register(alertsRoutes, { alerts: services.alerts });
  await app.register(indicatorsRoutes, { indicators: services.indicators });
  await app.register(investigationsRoutes, { investigations: services.investigations });
  await app.register(incidentsRoutes, { incidents: services.incidents });
  await app.register(usersRoutes, { users: services.users });
  await app.register(tokensRoutes, { tokens: services.tokens });
  await app.register(settingsRoutes, { settings: services.settings });
  await app.register(auditRoutes, { audit: services.audit });
  await app.register(agentsRoutes, { agents: services.agents, onOffboard: (deviceId) => options.gateway?.dispatch([deviceId]) });
  // Last: its catch-all answers every path the routes above do not own with the console's index.html.
  await app.register(consoleRoutes, { dir: options.consoleDir });
  const { gateway } = options;
  if (gateway) {
    app.server.on('upgrade', (request, socket, head) => {
      if (!gateway.handleUpgrade(request, socket, head)) socket.destroy();
    });
    app.addHook('preClose', async () => gateway.close());
  }
  return app;
}

/**
 * Node's HTTP or HTTPS server with a limit on receiving a request, which
 * Fastify leaves off (a client trickling its body would hold a connection for
 * ever); timed-out requests are looked for every tenth of the limit. An
 * https.Server takes requests exactly as an http.Server does; Fastify's types
 * only know the latter here.
 */
function nodeServer(tls: { key: string; cert: string } | null, requestTimeoutMs: number): FastifyServerFactory {
  const timeouts = { requestTimeout: requestTimeoutMs, headersTimeout: Math.min(60_000, requestTimeoutMs), connectionsCheckingInterval: Math.min(30_000, Math.max(100, requestTimeoutMs / 10)) };
  return (handler) => {
    const server = tls ? (createHttpsServer({ key: tls.key, cert: tls.cert, ...timeouts }, handler) as unknown as HttpServer) : createHttpServer(timeouts, handler);
    // Fastify's default, which it sets only on servers it makes itself.
    server.keepAliveTimeout = 72_000;
    return server;
  };
}

/** False when the query string has a `%` escape that is not valid UTF-8; the parser would keep it as literal text. */
function isValidQueryEncoding(url: string): boolean {
  const start = url.indexOf('?');
  if (start === -1) return true;
  try {
    decodeURIComponent(url.slice(start + 1));
    return true;
  } catch {
    return false;
  }
}

/** U+0000, or a surrogate that is not half of a pair (the `u` flag matches only those). */
// eslint-disable-next-line no-control-regex -- matching U+0000 is the point
const UNSTORABLE = /\u0000|\p{Surrogate}/u;

/**
 * Where the first string (or key) holding unstorable text sits, as `part/field`, or null.
 * Iterative and without per-level paths: a 256 KiB body can nest deeper than the stack.
 */
function findUnstorableText(root: unknown, rootPath: string): string | null {
  const stack: Array<[unknown, string]> = [[root, rootPath]];
  while (stack.length > 0) {
    const [value, path] = stack.pop()!;
    if (typeof value === 'string') {
      if (UNSTORABLE.test(value)) return path;
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        if (UNSTORABLE.test(key)) return path;
        stack.push([child, path === rootPath ? `${path}/${key}` : path]);
      }
    }
  }
  return null;
}
