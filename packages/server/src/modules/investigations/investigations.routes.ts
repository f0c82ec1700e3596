import {
  API_PATHS, CommentSchema, IdParamsSchema, InvestigationDetailSchema, InvestigationSchema, ListInvestigationsQuerySchema, StartInvestigationBodySchema,
} from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { InvestigationsService } from './investigations.service.ts';

const tags = ['Investigations'];

export const investigationsRoutes: FastifyPluginAsyncTypebox<{ investigations: InvestigationsService }> = async (app, { investigations }) => {
  app.get(API_PATHS.investigations, {
    schema: {
      tags, summary: 'Investigations in your scope, newest first (the latest 500)', querystring: ListInvestigationsQuerySchema,
      response: { 200: Type.Object({ items: Type.Array(InvestigationSchema) }), ...problemResponses },
    },
  }, async (request) => ({ items: await investigations.list(actorOf(request), request.query) }));

  app.post(API_PATHS.investigations, {
    schema: { tags, summary: 'Start an investigation on a device by hand (or join the one running there)', body: StartInvestigationBodySchema, response: { 201: InvestigationSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await investigations.start(actorOf(request), request.body.deviceId)));

  app.get(API_PATHS.investigation, {
    schema: { tags, summary: 'One investigation: its alerts, entities with verdicts, log and actions', params: IdParamsSchema, response: { 200: InvestigationDetailSchema, ...problemResponses } },
  }, (request) => investigations.get(actorOf(request), request.params.id));

  app.post(API_PATHS.investigationExpansion, {
    schema: {
      tags, summary: 'Approve or reject following the investigation\'s files to ten or more other devices', params: IdParamsSchema,
      body: Type.Object({ approve: Type.Boolean(), comment: Type.Optional(CommentSchema) }, { additionalProperties: false }), response: { 200: InvestigationSchema, ...problemResponses },
    },
  }, (request) => investigations.decideExpansion(actorOf(request), request.params.id, request.body.approve, request.body.comment ?? null));

  app.post(API_PATHS.investigationTerminate, {
    schema: {
      tags, summary: 'Terminate an investigation: its pending actions are cancelled', params: IdParamsSchema,
      body: Type.Object({ comment: Type.Optional(CommentSchema) }, { additionalProperties: false }), response: { 200: InvestigationSchema, ...problemResponses },
    },
  }, (request) => investigations.terminate(actorOf(request), request.params.id, request.body.comment ?? null));

  app.post(API_PATHS.investigationRetry, {
    schema: {
      tags, summary: 'Run a failed investigation again from the step it could not get past', params: IdParamsSchema,
      body: Type.Object({ comment: Type.Optional(CommentSchema) }, { additionalProperties: false }), response: { 200: InvestigationSchema, ...problemResponses },
    },
  }, (request) => investigations.retry(actorOf(request), request.params.id, request.body.comment ?? null));
};
