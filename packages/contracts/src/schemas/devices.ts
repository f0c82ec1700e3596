import { Type, type Static } from 'typebox';
import { PLATFORMS } from '../catalogue.ts';
import { IdSchema, TimestampSchema } from './common.ts';

export const AUTOMATION_LEVELS = ['full', 'semi_any_folder', 'semi_core_folders', 'semi_non_temp_folders', 'none'] as const;
export type AutomationLevel = (typeof AUTOMATION_LEVELS)[number];

export const PlatformSchema = Type.Enum(PLATFORMS);

export const DeviceSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  platform: PlatformSchema,
  groupId: Type.Union([IdSchema, Type.Null()]),
  createdAt: TimestampSchema,
  lastSeenAt: Type.Union([TimestampSchema, Type.Null()]),
});
export type Device = Static<typeof DeviceSchema>;

export const CreateDeviceBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  platform: PlatformSchema,
  groupId: Type.Optional(IdSchema),
}, { additionalProperties: false });
export type CreateDeviceBody = Static<typeof CreateDeviceBodySchema>;

export const DeviceGroupSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  rank: Type.Integer(),
  automationLevel: Type.Enum(AUTOMATION_LEVELS),
  createdAt: TimestampSchema,
});
export type DeviceGroup = Static<typeof DeviceGroupSchema>;

export const CreateDeviceGroupBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  rank: Type.Integer({ minimum: 0, maximum: 100000 }),
  automationLevel: Type.Enum(AUTOMATION_LEVELS),
}, { additionalProperties: false });
export type CreateDeviceGroupBody = Static<typeof CreateDeviceGroupBodySchema>;
