import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { API_PATHS, ProblemSchema } from '@quell/contracts';
import type { FastifyInstance } from 'fastify';

/** Every route documents its problem responses with the one shared shape. */
export const problemResponses = { '4XX': ProblemSchema } as const;

export async function registerOpenApi(app: FastifyInstance, publicUrl: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Quell API',
        version: '0.1.0',
        description: 'Action center for endpoint remediation. Errors are application/problem+json with a stable `code` (see docs/errors.md).',
      },
      servers: [{ url: publicUrl }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'API token from POST /api/tokens or `quell token create`' },
          session: { type: 'apiKey', in: 'cookie', name: 'quell_session', description: 'Session from POST /api/auth/login; send x-csrf-token on writes' },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: API_PATHS.docs, uiConfig: { deepLinking: true } });
  app.get(API_PATHS.openapi, { config: { public: true }, schema: { hide: true } }, () => app.swagger());
}
