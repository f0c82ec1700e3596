import { API_PATHS, CreateEnrolmentTokenBodySchema, CreatedEnrolmentTokenSchema, EnrolBodySchema, EnrolResponseSchema, IdParamsSchema, OkSchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { AgentsService } from './agents.service.ts';

export const agentsRoutes: FastifyPluginAsyncTypebox<{ agents: AgentsService; onOffboard: (deviceId: string) => void }> = async (app, { agents, onOffboard }) => {
  app.post(API_PATHS.enrolmentTokens, {
    schema: { tags: ['Agents'], summary: 'Create an enrolment token (limited uses, expiring); the secret is shown once', body: CreateEnrolmentTokenBodySchema, response: { 201: CreatedEnrolmentTokenSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await agents.createEnrolmentToken(actorOf(request), request.body)));

  app.post(API_PATHS.agentEnrol, {
    config: { public: true },
    schema: { tags: ['Agents'], summary: 'Enrol an agent with an enrolment token; returns its device id and the server key to pin', body: EnrolBodySchema, response: { 201: EnrolResponseSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await agents.enrol(request.body, request.ip)));

  app.post(API_PATHS.deviceOffboard, {
    schema: { tags: ['Agents'], summary: 'Revoke the agent of a device; it can no longer connect', params: IdParamsSchema, response: { 200: OkSchema, ...problemResponses } },
  }, async (request) => {
    await agents.offboard(actorOf(request), request.params.id);
    onOffboard(request.params.id);
    return { ok: true };
  });
};
