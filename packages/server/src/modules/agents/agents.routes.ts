import { createReadStream } from 'node:fs';
import { Type } from 'typebox';
import { QuellError } from '../../errors.ts';
import {
  API_PATHS, INVESTIGATION_PACKAGE_MAX_BYTES, IdSchema, OffboardBodySchema, CreateEnrolmentTokenBodySchema, CreatedEnrolmentTokenSchema, EnrolBodySchema, EnrolResponseSchema, EnrolmentTokenSchema,
  IdParamsSchema, OkSchema,
} from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { AgentsService } from './agents.service.ts';

export const agentsRoutes: FastifyPluginAsyncTypebox<{ agents: AgentsService; onOffboard: (deviceId: string) => void }> = async (app, { agents, onOffboard }) => {
  app.post(API_PATHS.enrolmentTokens, {
    schema: { tags: ['Agents'], summary: 'Create an enrolment token (limited uses, expiring); the secret is shown once', body: CreateEnrolmentTokenBodySchema, response: { 201: CreatedEnrolmentTokenSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await agents.createEnrolmentToken(actorOf(request), request.body)));

  app.get(API_PATHS.enrolmentTokens, {
    schema: { tags: ['Agents'], summary: 'Enrolment tokens, newest first (their secrets are never shown again)', response: { 200: Type.Object({ items: Type.Array(EnrolmentTokenSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await agents.listEnrolmentTokens(actorOf(request)) }));

  app.delete(API_PATHS.enrolmentToken, {
    schema: { tags: ['Agents'], summary: 'Revoke an enrolment token; agents enrolled with it stay enrolled', params: IdParamsSchema, response: { 200: EnrolmentTokenSchema, ...problemResponses } },
  }, (request) => agents.revokeEnrolmentToken(actorOf(request), request.params.id));

  app.post(API_PATHS.agentEnrol, {
    config: { public: true },
    schema: { tags: ['Agents'], summary: 'Enrol an agent with an enrolment token; returns its device id and the server key to pin', body: EnrolBodySchema, response: { 201: EnrolResponseSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await agents.enrol(request.body, request.ip)));

  // Investigation packages arrive as raw bytes, far larger than any JSON body.
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: INVESTIGATION_PACKAGE_MAX_BYTES }, (_request, body, done) => done(null, body));

  app.put(API_PATHS.agentPackageUpload, {
    config: { public: true },
    bodyLimit: INVESTIGATION_PACKAGE_MAX_BYTES,
    schema: {
      tags: ['Agents'], summary: 'An agent uploads the investigation package of its action, signed with its key', params: IdParamsSchema,
      headers: Type.Object({ 'x-quell-device': IdSchema, 'x-quell-signature': Type.String({ maxLength: 200 }) }),
      consumes: ['application/octet-stream'],
      response: { 201: Type.Object({ sha256: Type.String(), bytes: Type.Integer() }), ...problemResponses },
    },
  }, async (request, reply) => {
    if (!Buffer.isBuffer(request.body)) throw new QuellError('unsupported_media_type', 'Send the package as application/octet-stream');
    const stored = await agents.storePackage(request.params.id, request.headers['x-quell-device'], request.headers['x-quell-signature'], request.body);
    return reply.code(201).send(stored);
  });

  app.get(API_PATHS.actionPackage, {
    schema: { tags: ['Actions'], summary: 'Download the investigation package a collect action produced (tar.gz)', params: IdParamsSchema, produces: ['application/gzip'] },
  }, async (request, reply) => {
    const { path, bytes } = await agents.openPackage(actorOf(request), request.params.id);
    return reply.type('application/gzip').header('content-length', bytes)
      .header('content-disposition', `attachment; filename="investigation-package-${request.params.id}.tar.gz"`).send(createReadStream(path));
  });

  app.post(API_PATHS.deviceOffboard, {
    schema: {
      tags: ['Agents'],
      summary: 'Offboard the agent of a device: it releases what Quell put in force (unless releaseEffects is false), leaves its vault with instructions, removes its identity and reports; then it is revoked',
      params: IdParamsSchema, body: Type.Optional(OffboardBodySchema), response: { 200: OkSchema, ...problemResponses },
    },
  }, async (request) => {
    await agents.offboard(actorOf(request), request.params.id, request.body ?? {});
    onOffboard(request.params.id);
    return { ok: true };
  });
};
