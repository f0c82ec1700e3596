import { API_PATHS, AuditPageSchema, AuditVerificationSchema, ListAuditQuerySchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { AuditService } from './audit.service.ts';

export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService }> = async (app, { audit }) => {
  app.get(API_PATHS.audit, {
    schema: {
      tags: ['Audit'], summary: 'The audit log, newest first',
      description: 'Scoped like everything else: a user scoped to device groups reads their own acts and the entries whose device groups all lie in their scope; '
        + 'entries that concern no device (users, tokens, settings, sign-ins) are for unscoped Security Administrators and up. Filters narrow what the reader may see.',
      querystring: ListAuditQuerySchema, response: { 200: AuditPageSchema, ...problemResponses },
    },
  }, (request) => audit.list(actorOf(request), request.query));

  app.get(API_PATHS.auditVerify, {
    schema: {
      tags: ['Audit'], summary: 'Verify the hash chain of the whole log',
      description: 'Always checks every entry. A user scoped to device groups gets only `ok`; unscoped readers also get how many entries were checked and where the chain breaks.',
      response: { 200: AuditVerificationSchema, ...problemResponses },
    },
  }, (request) => audit.verifyFor(actorOf(request)));
};
