import {
  API_PATHS, ActionSchema, AlertPageSchema, AlertSchema, CreateAlertBodySchema, FalsePositiveBodySchema, IdParamsSchema, IndicatorSchema, IngestedAlertSchema, ListAlertsQuerySchema,
  UpdateAlertBodySchema,
} from '@quell/contracts';
import { Type } from 'typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { AlertsService } from './alerts.service.ts';
import { EcsDocumentSchema } from './ecs.ts';
import { WazuhAlertSchema } from './wazuh.ts';

const tags = ['Alerts'];

export const alertsRoutes: FastifyPluginAsyncTypebox<{ alerts: AlertsService }> = async (app, { alerts }) => {
  app.post(API_PATHS.alerts, {
    schema: {
      tags, summary: 'Send an alert (201); the same externalId from the same detection source again returns the stored alert (200)',
      body: CreateAlertBodySchema, response: { 200: AlertSchema, 201: AlertSchema, ...problemResponses },
    },
  }, async (request, reply) => {
    const { alert, created } = await alerts.create(actorOf(request), request.body);
    return reply.code(created ? 201 : 200).send(alert);
  });

  app.post(API_PATHS.wazuhAlerts, {
    schema: {
      tags, summary: 'Send a Wazuh alert (alerts.json format): 201 with the stored alert and its device, found by Wazuh agent id, name or address, or created unmanaged; 200 for a redelivery',
      body: WazuhAlertSchema, response: { 200: IngestedAlertSchema, 201: IngestedAlertSchema, ...problemResponses },
    },
  }, async (request, reply) => {
    const { alert, created } = await alerts.createFromWazuh(actorOf(request), request.body);
    return reply.code(created ? 201 : 200).send(alert);
  });

  app.post(API_PATHS.ecsAlerts, {
    schema: {
      tags,
      summary: 'Send an Elastic Common Schema alert or event (Elastic Security, Elastic Defend, Winlogbeat Sysmon): 201 with the stored alert and its device, found by agent / host id, host name or address, or created unmanaged; 200 for a redelivery',
      body: EcsDocumentSchema, response: { 200: IngestedAlertSchema, 201: IngestedAlertSchema, ...problemResponses },
    },
  }, async (request, reply) => {
    const { alert, created } = await alerts.createFromEcs(actorOf(request), request.body);
    return reply.code(created ? 201 : 200).send(alert);
  });

  app.get(API_PATHS.alerts, {
    schema: { tags, summary: 'Alerts in your scope, newest first', querystring: ListAlertsQuerySchema, response: { 200: AlertPageSchema, ...problemResponses } },
  }, (request) => alerts.list(actorOf(request), request.query));

  app.get(API_PATHS.alert, {
    schema: { tags, summary: 'One alert with its evidence', params: IdParamsSchema, response: { 200: AlertSchema, ...problemResponses } },
  }, (request) => alerts.get(actorOf(request), request.params.id));

  app.patch(API_PATHS.alert, {
    schema: { tags, summary: 'Triage an alert: status, classification, determination', params: IdParamsSchema, body: UpdateAlertBodySchema, response: { 200: AlertSchema, ...problemResponses } },
  }, (request) => alerts.update(actorOf(request), request.params.id, request.body));

  app.post(API_PATHS.alertFalsePositive, {
    schema: {
      tags, summary: 'A false positive in one flow: resolve the alert as such, undo its remediation (or every instance), allow its files',
      params: IdParamsSchema, body: FalsePositiveBodySchema,
      response: { 200: Type.Object({ alert: AlertSchema, undone: Type.Array(ActionSchema), indicators: Type.Array(IndicatorSchema) }), ...problemResponses },
    },
  }, (request) => alerts.falsePositive(actorOf(request), request.params.id, request.body));
};
