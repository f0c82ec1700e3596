import { Type, type Static } from 'typebox';
import { INDICATOR_ACTIONS, INDICATOR_TYPES } from '../enumerations.ts';
import { IdSchema, TimestampSchema } from './common.ts';


export const CreateIndicatorBodySchema = Type.Object({
  type: Type.Enum(INDICATOR_TYPES),
  value: Type.String({ minLength: 1, maxLength: 2048 }),
  action: Type.Enum(INDICATOR_ACTIONS),
  title: Type.String({ minLength: 1, maxLength: 256 }),
  description: Type.Optional(Type.String({ maxLength: 4000 })),
  /** Device groups it applies to; omitted or empty: every device. */
  deviceGroupIds: Type.Optional(Type.Array(IdSchema, { maxItems: 100 })),
  expiresAt: Type.Optional(Type.Union([TimestampSchema, Type.Null()])),
}, { additionalProperties: false });
export type CreateIndicatorBody = Static<typeof CreateIndicatorBodySchema>;

export const UpdateIndicatorBodySchema = Type.Object({
  action: Type.Optional(Type.Enum(INDICATOR_ACTIONS)),
  title: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  description: Type.Optional(Type.Union([Type.String({ maxLength: 4000 }), Type.Null()])),
  deviceGroupIds: Type.Optional(Type.Array(IdSchema, { maxItems: 100 })),
  expiresAt: Type.Optional(Type.Union([TimestampSchema, Type.Null()])),
}, { additionalProperties: false, minProperties: 1 });
export type UpdateIndicatorBody = Static<typeof UpdateIndicatorBodySchema>;

export const IndicatorSchema = Type.Object({
  id: IdSchema,
  type: Type.Enum(INDICATOR_TYPES),
  /** Normalised: hashes in lower case, domains in lower case. */
  value: Type.String(),
  action: Type.Enum(INDICATOR_ACTIONS),
  title: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  deviceGroupIds: Type.Array(IdSchema),
  expiresAt: Type.Union([TimestampSchema, Type.Null()]),
  /** False once expired: expired indicators are kept for the record and match nothing. */
  active: Type.Boolean(),
  createdBy: Type.String(),
  createdAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type Indicator = Static<typeof IndicatorSchema>;

/** One indicator's hits on one device, as its agent reported them. */
export const IndicatorHitRowSchema = Type.Object({
  indicatorId: IdSchema,
  deviceId: IdSchema,
  deviceName: Type.String(),
  count: Type.Integer(),
  firstAt: TimestampSchema,
  lastAt: TimestampSchema,
  /** The last hit: blocked or audited, the remote end (traffic), the name (DNS) or the file, and the process and user where the agent could tell. */
  lastHit: Type.Object({
    action: Type.Enum(['block', 'audit'] as const),
    remote: Type.Union([Type.String(), Type.Null()]),
    /** The name a DNS query asked for. */
    name: Type.Union([Type.String(), Type.Null()]),
    direction: Type.Union([Type.Enum(['inbound', 'outbound'] as const), Type.Null()]),
    path: Type.Union([Type.String(), Type.Null()]),
    process: Type.Union([Type.String(), Type.Null()]),
    user: Type.Union([Type.String(), Type.Null()]),
  }),
});
export type IndicatorHitRow = Static<typeof IndicatorHitRowSchema>;

export const ListIndicatorHitsQuerySchema = Type.Object({
  indicatorId: Type.Optional(IdSchema),
  deviceId: Type.Optional(IdSchema),
}, { additionalProperties: false });
export type ListIndicatorHitsQuery = Static<typeof ListIndicatorHitsQuerySchema>;

export const ListIndicatorsQuerySchema = Type.Object({
  type: Type.Optional(Type.Enum(INDICATOR_TYPES)),
  action: Type.Optional(Type.Enum(INDICATOR_ACTIONS)),
  value: Type.Optional(Type.String({ maxLength: 2048 })),
  includeExpired: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type ListIndicatorsQuery = Static<typeof ListIndicatorsQuerySchema>;

/** The columns of the indicator CSV, for export and import alike. */
export const INDICATOR_CSV_COLUMNS = ['type', 'value', 'action', 'title', 'description', 'deviceGroupIds', 'expiresAt'] as const;
