import { Type } from 'typebox';
import { API_PATHS, CreateUserBodySchema, IdParamsSchema, UpdateUserBodySchema, UserSchema } from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { UsersService } from './users.service.ts';

const tags = ['Users'];

export const usersRoutes: FastifyPluginAsyncTypebox<{ users: UsersService }> = async (app, { users }) => {
  app.get(API_PATHS.users, {
    schema: { tags, summary: 'All users', response: { 200: Type.Object({ items: Type.Array(UserSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await users.list(actorOf(request)) }));

  app.post(API_PATHS.users, {
    schema: { tags, summary: 'Create a user', body: CreateUserBodySchema, response: { 201: UserSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await users.create(actorOf(request), request.body)));

  app.patch(API_PATHS.user, {
    schema: { tags, summary: 'Change role, scope or disable a user (ends their sessions)', params: IdParamsSchema, body: UpdateUserBodySchema, response: { 200: UserSchema, ...problemResponses } },
  }, (request) => users.update(actorOf(request), request.params.id, request.body));
};
