import { Type } from 'typebox';
import { API_PATHS, CreateTokenBodySchema, CreatedTokenSchema, IdParamsSchema, TokenSchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { TokensService } from './tokens.service.ts';

const tags = ['API tokens'];

export const tokensRoutes: FastifyPluginAsyncTypebox<{ tokens: TokensService }> = async (app, { tokens }) => {
  app.get(API_PATHS.tokens, {
    schema: { tags, summary: 'API tokens (never their secrets)', response: { 200: Type.Object({ items: Type.Array(TokenSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await tokens.list(actorOf(request)) }));

  app.post(API_PATHS.tokens, {
    schema: { tags, summary: 'Create a scoped, expiring token acting as you; the secret is shown once', body: CreateTokenBodySchema, response: { 201: CreatedTokenSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await tokens.create(actorOf(request), request.body)));

  app.delete(API_PATHS.token, {
    schema: { tags, summary: 'Revoke a token', params: IdParamsSchema, response: { 200: TokenSchema, ...problemResponses } },
  }, (request) => tokens.revoke(actorOf(request), request.params.id));
};
