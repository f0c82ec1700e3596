import { Type } from 'typebox';
import {
  API_PATHS, CreateDeviceBodySchema, CreateDeviceGroupBodySchema, DeviceGroupSchema, DeviceSchema, IdParamsSchema, UpdateDeviceBodySchema, UpdateDeviceGroupBodySchema,
} from '@quell/contracts';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { actorOf } from '../../plugins/auth.ts';
import { problemResponses } from '../../plugins/openapi.ts';
import type { DevicesService } from './devices.service.ts';

export const devicesRoutes: FastifyPluginAsyncTypebox<{ devices: DevicesService }> = async (app, { devices }) => {
  app.get(API_PATHS.devices, {
    schema: { tags: ['Devices'], summary: 'Devices in your scope', response: { 200: Type.Object({ items: Type.Array(DeviceSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await devices.list(actorOf(request)) }));

  app.post(API_PATHS.devices, {
    schema: { tags: ['Devices'], summary: 'Register a device (agents register themselves at enrolment)', body: CreateDeviceBodySchema, response: { 201: DeviceSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await devices.create(actorOf(request), request.body)));

  app.get(API_PATHS.device, {
    schema: { tags: ['Devices'], summary: 'One device', params: IdParamsSchema, response: { 200: DeviceSchema, ...problemResponses } },
  }, (request) => devices.get(actorOf(request), request.params.id));

  app.patch(API_PATHS.device, {
    schema: { tags: ['Devices'], summary: 'Put a device in a device group by hand (null: back to the groups\' rules)', params: IdParamsSchema, body: UpdateDeviceBodySchema, response: { 200: DeviceSchema, ...problemResponses } },
  }, (request) => devices.update(actorOf(request), request.params.id, request.body));

  app.get(API_PATHS.deviceGroups, {
    schema: { tags: ['Device groups'], summary: 'Device groups in your scope, highest rank first', response: { 200: Type.Object({ items: Type.Array(DeviceGroupSchema) }), ...problemResponses } },
  }, async (request) => ({ items: await devices.listGroups(actorOf(request)) }));

  app.patch(API_PATHS.deviceGroup, {
    schema: { tags: ['Device groups'], summary: 'Change a device group; a new rule or rank places every device not placed by hand again', params: IdParamsSchema, body: UpdateDeviceGroupBodySchema, response: { 200: DeviceGroupSchema, ...problemResponses } },
  }, (request) => devices.updateGroup(actorOf(request), request.params.id, request.body));

  app.post(API_PATHS.deviceGroups, {
    schema: { tags: ['Device groups'], summary: 'Create a device group', body: CreateDeviceGroupBodySchema, response: { 201: DeviceGroupSchema, ...problemResponses } },
  }, async (request, reply) => reply.code(201).send(await devices.createGroup(actorOf(request), request.body)));
};
