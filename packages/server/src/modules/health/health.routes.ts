import { sql } from 'kysely';
import { API_PATHS } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Metrics } from '../../plugins/metrics.ts';
import { requirePermission } from '../../actor.ts';
import { actorOf } from '../../plugins/auth.ts';

export const healthRoutes: FastifyPluginAsyncTypebox<{ store: Store; metrics: Metrics; metricsPublic: boolean; isReady: () => boolean }> = async (app, { store, metrics, metricsPublic, isReady }) => {
  const Status = Type.Object({ status: Type.String() });

  app.get(API_PATHS.healthz, { config: { public: true }, schema: { tags: ['Operations'], summary: 'The process is alive', response: { 200: Status } } }, () => ({ status: 'ok' }));

  app.get(API_PATHS.readyz, {
    config: { public: true },
    schema: { tags: ['Operations'], summary: 'The database answers and the server is not shutting down', response: { 200: Status } },
  }, async () => {
    if (!isReady()) throw new QuellError('not_ready', 'The server is starting or shutting down');
    try {
      await sql`SELECT 1`.execute(store.db);
    } catch (error) {
      throw new QuellError('not_ready', 'The database does not answer', { cause: error });
    }
    return { status: 'ready' };
  });

  // Fleet-wide counts: by default only for callers holding metrics:read who see every device group (docs/metrics.md).
  app.get(API_PATHS.metrics, {
    config: metricsPublic ? { public: true } : { authenticate: true },
    schema: { tags: ['Operations'], summary: 'Prometheus metrics; needs the metrics:read scope unless the server serves them publicly', produces: ['text/plain'] },
  }, async (request, reply) => {
    if (!metricsPublic) {
      const actor = actorOf(request);
      requirePermission(actor, 'metrics:read');
      if (actor.groupIds !== null) throw new QuellError('forbidden', 'Metrics count every device group; a user scoped to some groups cannot read them');
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};
