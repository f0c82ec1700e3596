import { API_PATHS, SettingsSchema, UpdateSettingsBodySchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { SettingsService } from './settings.service.ts';

export const settingsRoutes: FastifyPluginAsyncTypebox<{ settings: SettingsService }> = async (app, { settings }) => {
  app.get(API_PATHS.settings, {
    schema: { tags: ['Settings'], summary: 'Pending expiry and the four-eyes action types', response: { 200: SettingsSchema, ...problemResponses } },
  }, (request) => settings.get(actorOf(request)));

  app.patch(API_PATHS.settings, {
    schema: { tags: ['Settings'], summary: 'Change settings', body: UpdateSettingsBodySchema, response: { 200: SettingsSchema, ...problemResponses } },
  }, (request) => settings.update(actorOf(request), request.body));
};
