import { API_PATHS, IdParamsSchema, IncidentDetailSchema, IncidentSchema, UpdateIncidentBodySchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { IncidentsService } from './incidents.service.ts';

const tags = ['Incidents'];

export const incidentsRoutes: FastifyPluginAsyncTypebox<{ incidents: IncidentsService }> = async (app, { incidents }) => {
  app.get(API_PATHS.incidents, {
    schema: { tags, summary: 'Incidents with alerts in your scope, latest activity first', response: { 200: Type.Object({ items: Type.Array(IncidentSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await incidents.list(actorOf(request)) }));

  app.get(API_PATHS.incident, {
    schema: { tags, summary: 'One incident: its alerts, devices, evidence, investigations and their actions', params: IdParamsSchema, response: { 200: IncidentDetailSchema, ...problemResponses } },
  }, (request) => incidents.get(actorOf(request), request.params.id));

  app.patch(API_PATHS.incident, {
    schema: { tags, summary: 'Resolve or reopen an incident', params: IdParamsSchema, body: UpdateIncidentBodySchema, response: { 200: IncidentSchema, ...problemResponses } },
  }, (request) => incidents.update(actorOf(request), request.params.id, request.body));
};
