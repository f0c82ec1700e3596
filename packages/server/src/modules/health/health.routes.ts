import { sql } from 'kysely';
import { API_PATHS } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Metrics } from '../../plugins/metrics.ts';

export const healthRoutes: FastifyPluginAsyncTypebox<{ store: Store; metrics: Metrics; isReady: () => boolean }> = async (app, { store, metrics, isReady }) => {
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

  app.get(API_PATHS.metrics, { config: { public: true }, schema: { tags: ['Operations'], summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (_request, reply) =>
    reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
};
