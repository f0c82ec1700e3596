import { API_PATHS, CreateIndicatorBodySchema, IdParamsSchema, IndicatorHitRowSchema, IndicatorSchema, ListIndicatorHitsQuerySchema, ListIndicatorsQuerySchema, UpdateIndicatorBodySchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { IndicatorsService } from './indicators.service.ts';

const tags = ['Indicators'];
const ITEMS = Type.Object({ items: Type.Array(IndicatorSchema) });

export const indicatorsRoutes: FastifyPluginAsyncTypebox<{ indicators: IndicatorsService }> = async (app, { indicators }) => {
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: 4 * 1024 * 1024 }, (_request, body, done) => done(null, body));

  app.get(API_PATHS.indicators, {
    schema: { tags, summary: 'Indicators, newest first (active ones unless includeExpired)', querystring: ListIndicatorsQuerySchema, response: { 200: ITEMS, ...problemResponses } },
  }, async (request) => ({ items: await indicators.list(actorOf(request), request.query) }));

  app.get(API_PATHS.indicatorHits, {
    schema: {
      tags, summary: 'Where indicators matched on endpoints: per indicator and device, with the last hit, most recent first (at most 1,000)',
      querystring: ListIndicatorHitsQuerySchema, response: { 200: Type.Object({ items: Type.Array(IndicatorHitRowSchema) }), ...problemResponses },
    },
  }, async (request) => ({ items: await indicators.hits(actorOf(request), request.query) }));

  app.post(API_PATHS.indicators, {
    schema: { tags, summary: 'Create an indicator', body: CreateIndicatorBodySchema, response: { 201: IndicatorSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await indicators.create(actorOf(request), request.body)));

  app.patch(API_PATHS.indicator, {
    schema: { tags, summary: 'Change an indicator', params: IdParamsSchema, body: UpdateIndicatorBodySchema, response: { 200: IndicatorSchema, ...problemResponses } },
  }, (request) => indicators.update(actorOf(request), request.params.id, request.body));

  app.delete(API_PATHS.indicator, {
    schema: { tags, summary: 'Expire an indicator now (it is kept for the record)', params: IdParamsSchema, response: { 200: IndicatorSchema, ...problemResponses } },
  }, (request) => indicators.expire(actorOf(request), request.params.id));

  app.get(API_PATHS.indicatorsCsv, {
    schema: { tags, summary: 'The active indicators as CSV (the columns import reads)', produces: ['text/csv'] },
  }, async (request, reply) => reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="quell-indicators.csv"').send(await indicators.exportCsv(actorOf(request))));

  app.post(API_PATHS.indicatorsImport, {
    schema: {
      tags, summary: 'Import indicators from CSV (text/csv; header: type,value,action,title[,description,deviceGroupIds,expiresAt]); all rows or none',
      consumes: ['text/csv'], body: Type.String({ maxLength: 4 * 1024 * 1024 }), response: { 201: ITEMS, ...problemResponses },
    },
  }, async (request, reply) => reply.code(201).send({ items: await indicators.importCsv(actorOf(request), request.body) }));
};
