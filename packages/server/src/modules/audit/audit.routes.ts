import { API_PATHS, AuditPageSchema, AuditVerificationSchema, ListAuditQuerySchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { requirePermission } from '../../actor.ts';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { AuditService } from './audit.service.ts';

export const auditRoutes: FastifyPluginAsyncTypebox<{ audit: AuditService }> = async (app, { audit }) => {
  app.get(API_PATHS.audit, {
    schema: { tags: ['Audit'], summary: 'The audit log, newest first', querystring: ListAuditQuerySchema, response: { 200: AuditPageSchema, ...problemResponses } },
  }, (request) => audit.list(actorOf(request), request.query));

  app.get(API_PATHS.auditVerify, {
    schema: { tags: ['Audit'], summary: 'Verify the hash chain of the whole log', response: { 200: AuditVerificationSchema, ...problemResponses } },
  }, (request) => {
    requirePermission(actorOf(request), 'audit:read');
    return audit.verify();
  });
};
