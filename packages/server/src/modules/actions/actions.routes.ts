import { Readable } from 'node:stream';
import {
  API_PATHS, ActionActivitySchema, ActionDetailSchema, ActionPageSchema, ActionSchema, ActionSummarySchema, BulkDecisionBodySchema, BulkResultSchema,
  CreateActionBodySchema, ExportActionsQuerySchema, IdParamsSchema, InstancesSchema, ListActionsQuerySchema, UndoInstancesBodySchema,
} from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import { CSV_COLUMNS, csvRow } from './actions.presenter.ts';
import type { ActionsService } from './actions.service.ts';

const tags = ['Actions'];

export const actionsRoutes: FastifyPluginAsyncTypebox<{ actions: ActionsService }> = async (app, { actions }) => {
  app.get(API_PATHS.actions, {
    schema: { tags, summary: 'List the Pending or History view', querystring: ListActionsQuerySchema, response: { 200: ActionPageSchema, ...problemResponses } },
  }, (request) => actions.list(actorOf(request), request.query));

  app.post(API_PATHS.actions, {
    schema: { tags, summary: 'Propose a remediation action', body: CreateActionBodySchema, response: { 201: ActionSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await actions.create(actorOf(request), request.body)));

  app.get(API_PATHS.summary, {
    schema: { tags, summary: 'What is open: pending by type, the oldest pending age, queued actions waiting for devices out of contact', response: { 200: ActionSummarySchema, ...problemResponses } },
  }, (request) => actions.summary(actorOf(request)));

  app.get(API_PATHS.activity, {
    schema: { tags, summary: 'The last 30 days: actions by status per day, rejections and expirations', response: { 200: ActionActivitySchema, ...problemResponses } },
  }, (request) => actions.activity(actorOf(request)));

  app.get(API_PATHS.exportCsv, {
    schema: { tags, summary: 'Export the History view as CSV (streamed; same filters as the list)', querystring: ExportActionsQuerySchema, produces: ['text/csv'] },
  }, async (request, reply) => {
    const rows = actions.exportRows(actorOf(request), request.query);
    // Pull the first row before answering so that a permission or filter error still becomes a problem response.
    const first = await rows.next();
    // One chunk per thousand rows: a chunk per row costs the stream more than the rows themselves.
    async function* lines() {
      let chunk = CSV_COLUMNS.join(',') + '\r\n' + (first.done ? '' : csvRow(first.value));
      let count = 0;
      for await (const row of rows) {
        chunk += csvRow(row);
        if (++count % 1000 === 0) {
          yield chunk;
          chunk = '';
        }
      }
      yield chunk;
    }
    return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="quell-actions.csv"').send(Readable.from(lines()));
  });

  app.get(API_PATHS.action, {
    schema: { tags, summary: 'One action with its timeline', params: IdParamsSchema, response: { 200: ActionDetailSchema, ...problemResponses } },
  }, (request) => actions.get(actorOf(request), request.params.id));

  const bulk = (path: string, summary: string, run: (typeof actions)['approve']) => app.post(path, {
    schema: { tags, summary, body: BulkDecisionBodySchema, response: { 200: BulkResultSchema, ...problemResponses } },
  }, async (request) => ({ items: await run(actorOf(request), request.body) }));
  bulk(API_PATHS.approve, 'Approve pending actions of one type (all or nothing)', actions.approve);
  bulk(API_PATHS.reject, 'Reject pending actions of one type (all or nothing)', actions.reject);
  bulk(API_PATHS.undo, 'Undo completed actions of one type; returns the undo actions', actions.undo);
  bulk(API_PATHS.cancel, 'Cancel pending or queued actions (all or nothing)', actions.cancel);

  app.get(API_PATHS.actionInstances, {
    schema: { tags, summary: 'Other devices where the same file (SHA-256) was quarantined', params: IdParamsSchema, response: { 200: InstancesSchema, ...problemResponses } },
  }, (request) => actions.instances(actorOf(request), request.params.id));

  app.post(API_PATHS.actionInstancesUndo, {
    schema: { tags, summary: 'Undo this quarantine and every other instance of the same file', params: IdParamsSchema, body: UndoInstancesBodySchema, response: { 200: BulkResultSchema, ...problemResponses } },
  }, async (request) => ({ items: await actions.undoInstances(actorOf(request), request.params.id, request.body.comment ?? null) }));
};
