import { type Static, type TLiteral, type TObject, type TOptional, type TUnion, Type } from 'typebox';
import { ACTION_SORT_FIELDS, TIME_RANGES } from '../enumerations.ts';
import { ACTION_SOURCES, ACTION_TYPES, type ActionType, ENTITY_TYPES } from '../catalogue.ts';
import { ACTION_PARAMETER_SCHEMAS } from '../parameters.ts';
import { ACTION_EVENTS, ACTION_STATUSES, ACTION_VIEWS } from '../lifecycle.ts';
import { CommentSchema, IdSchema, TimestampSchema } from './common.ts';

export const ActionTypeSchema = Type.Enum(ACTION_TYPES);
export const ActionStatusSchema = Type.Enum(ACTION_STATUSES);
export const ActionSourceSchema = Type.Enum(ACTION_SOURCES);
export const EntityTypeSchema = Type.Enum(ENTITY_TYPES);
export const Sha256Schema = Type.String({ pattern: '^[a-fA-F0-9]{64}$' });

/** Entity names come from attackers: they are stored and returned as plain data. */
export const EntitySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 1024 }),
  sha256: Type.Optional(Sha256Schema),
  path: Type.Optional(Type.String({ maxLength: 4096 })),
}, { additionalProperties: false });
export type Entity = Static<typeof EntitySchema>;

/**
 * An action's parameters, whichever its type: every parameter any type
 * takes. Which ones a type takes, and their rules, is in
 * ACTION_PARAMETER_SCHEMAS (and in the request body of POST /api/actions).
 */
export const ActionParametersSchema = Type.Object(
  Object.assign({}, ...ACTION_TYPES.map((type) => ACTION_PARAMETER_SCHEMAS[type].properties)) as AllParameterProperties,
  { additionalProperties: false, description: 'The parameters of the action\'s type; see the request body of POST /api/actions for which type takes which.' },
);
type AllParameterProperties = UnionToIntersection<(typeof ACTION_PARAMETER_SCHEMAS)[ActionType]['properties']>;
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

const CreateActionFields = {
  deviceId: IdSchema,
  entity: EntitySchema,
  source: ActionSourceSchema,
  /** The creator says whether the action waits for approval; manual actions never do. */
  status: Type.Optional(Type.Enum(['pending_approval', 'queued'] as const)),
  investigationId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  incidentId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  comment: Type.Optional(CommentSchema),
};
type BodiesOf<Types extends readonly ActionType[]> = { -readonly [K in keyof Types]: Types[K] extends ActionType ? CreateActionBodyOf<Types[K]> : never };
type CreateActionBodyOf<T extends ActionType> = TObject<typeof CreateActionFields & { type: TLiteral<T>; parameters: TOptional<(typeof ACTION_PARAMETER_SCHEMAS)[T]> }>;

/** One body per action type, told apart by `type`: each takes its type's parameters and no others. */
export const CreateActionBodySchema = Type.Union(
  ACTION_TYPES.map((type) => Type.Object({
    type: Type.Literal(type),
    ...CreateActionFields,
    parameters: Type.Optional(ACTION_PARAMETER_SCHEMAS[type]),
  }, { additionalProperties: false, title: type })),
  { discriminator: { propertyName: 'type' } },
) as unknown as TUnion<BodiesOf<typeof ACTION_TYPES>>;
export type CreateActionBody = Static<typeof CreateActionBodySchema>;

export const ActionResultSchema = Type.Object({
  output: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
});
export type ActionResult = Static<typeof ActionResultSchema>;

export const ActionSchema = Type.Object({
  id: IdSchema,
  type: ActionTypeSchema,
  status: ActionStatusSchema,
  entityType: EntityTypeSchema,
  entity: EntitySchema,
  parameters: ActionParametersSchema,
  deviceId: IdSchema,
  deviceName: Type.String(),
  deviceGroupId: Type.Union([IdSchema, Type.Null()]),
  source: ActionSourceSchema,
  investigationId: Type.Union([Type.String(), Type.Null()]),
  incidentId: Type.Union([Type.String(), Type.Null()]),
  approvalId: Type.Union([Type.String(), Type.Null()]),
  requestedBy: Type.String(),
  requestedAt: TimestampSchema,
  comment: Type.Union([Type.String(), Type.Null()]),
  decidedBy: Type.Union([Type.String(), Type.Null()]),
  decidedAt: Type.Union([TimestampSchema, Type.Null()]),
  decisionComment: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.Union([TimestampSchema, Type.Null()]),
  updatedAt: TimestampSchema,
  undoOf: Type.Union([IdSchema, Type.Null()]),
  undoneBy: Type.Union([IdSchema, Type.Null()]),
  result: Type.Union([ActionResultSchema, Type.Null()]),
});
export type Action = Static<typeof ActionSchema>;

export const ActionTimelineEntrySchema = Type.Object({
  at: TimestampSchema,
  event: Type.Union([Type.Enum(ACTION_EVENTS), Type.Literal('create'), Type.Literal('undo_requested')]),
  fromStatus: Type.Union([ActionStatusSchema, Type.Null()]),
  toStatus: ActionStatusSchema,
  actor: Type.String(),
  comment: Type.Union([Type.String(), Type.Null()]),
});
export type ActionTimelineEntry = Static<typeof ActionTimelineEntrySchema>;

function EnforcementSchema() {
  return Type.Object({
    succeeded: Type.Integer(),
    failed: Type.Integer(),
    /** Agents that have not applied it yet; offline ones apply it when they reconnect. */
    waiting: Type.Integer(),
    waitingOnline: Type.Integer(),
    failures: Type.Array(Type.Object({ deviceId: IdSchema, deviceName: Type.String(), reason: Type.String() }), { description: 'The first 50' }),
  });
}

export const ActionDetailSchema = Type.Object({
  action: ActionSchema,
  timeline: Type.Array(ActionTimelineEntrySchema),
  /** For a queued action whose device is not connected: why it waits, in words, and until when. */
  waiting: Type.Union([Type.Object({
    reason: Type.String(),
    deviceLastSeenAt: Type.Union([TimestampSchema, Type.Null()]),
    deliverBy: Type.Union([TimestampSchema, Type.Null()]),
  }), Type.Null()]),
  /** For actions every managed agent carries out (containment): how many have, how many failed and why, how many have yet to. */
  enforcement: Type.Union([EnforcementSchema(), Type.Null()]),
  /** For an effect in force (isolation, code restriction, a contained user, a stopped service, a removed task or file) on a device whose agent is out of contact: unverified since when. */
  unverified: Type.Union([Type.Object({ since: Type.Union([TimestampSchema, Type.Null()]), reason: Type.String() }), Type.Null()]),
  /** Each device where the action's effect was found lifted (tampering, a firewall reload) and re-applied by the agent. */
  drift: Type.Array(Type.Object({
    deviceId: IdSchema,
    deviceName: Type.String(),
    count: Type.Integer(),
    firstAt: TimestampSchema,
    lastAt: TimestampSchema,
    /** What the agent found the last time, in its words. */
    detail: Type.String(),
    /** Whether the effect holds again after the last time. */
    repaired: Type.Boolean(),
  })),
  /** Where the action came from: the alerts that started its investigation (the first 20, oldest first), and the incidents they and the action belong to. */
  origin: Type.Object({
    alerts: Type.Array(Type.Object({ id: IdSchema, title: Type.String(), incidentId: Type.Union([IdSchema, Type.Null()]) })),
    incidentIds: Type.Array(Type.String()),
  }),
});
export type ActionOrigin = Static<typeof ActionDetailSchema>['origin'];
export type ActionDetail = Static<typeof ActionDetailSchema>;


export const ListActionsQuerySchema = Type.Object({
  view: Type.Enum(ACTION_VIEWS),
  range: Type.Optional(Type.Enum(TIME_RANGES)),
  from: Type.Optional(TimestampSchema),
  to: Type.Optional(TimestampSchema),
  type: Type.Optional(ActionTypeSchema),
  source: Type.Optional(ActionSourceSchema),
  status: Type.Optional(ActionStatusSchema),
  entityType: Type.Optional(EntityTypeSchema),
  deviceId: Type.Optional(IdSchema),
  investigationId: Type.Optional(Type.String({ maxLength: 64 })),
  /** The incident's actions: those of the investigations its alerts started, and those taken on the incident itself. */
  incidentId: Type.Optional(Type.String({ maxLength: 64 })),
  decidedBy: Type.Optional(Type.String({ maxLength: 128 })),
  /** Free text: matches the entity's name or path (contains, any case) or its SHA-256 (exact). */
  entity: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  sort: Type.Optional(Type.Enum(ACTION_SORT_FIELDS)),
  order: Type.Optional(Type.Enum(['asc', 'desc'] as const)),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  cursor: Type.Optional(Type.String({ maxLength: 512 })),
  /** Counting matches costs a scan; ask for it on the first page only. It counts up to `TOTAL_COUNT_CAP`. */
  withTotal: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });
export type ListActionsQuery = Static<typeof ListActionsQuerySchema>;
export type ExportActionsQuery = Omit<ListActionsQuery, 'limit' | 'cursor' | 'withTotal' | 'view'>;

export const ExportActionsQuerySchema = Type.Omit(ListActionsQuerySchema, ['limit', 'cursor', 'withTotal', 'view']);

/**
 * How far `withTotal` counts. Past it a list says "more than 10,000" rather than scan a million rows
 * on every first page: a list is read a page at a time, and the exact figure is the export's.
 */
export const TOTAL_COUNT_CAP = 10_000;

export const ActionPageSchema = Type.Object({
  items: Type.Array(ActionSchema),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  /** The number of matches when `withTotal` was asked, else null; at most `TOTAL_COUNT_CAP`. */
  total: Type.Union([Type.Integer(), Type.Null()]),
  /** True when more than `total` actions match (the count stopped at `TOTAL_COUNT_CAP`). */
  totalIsLowerBound: Type.Boolean(),
});

export const BULK_MAX = 500;
export const BulkDecisionBodySchema = Type.Object({
  ids: Type.Array(IdSchema, { minItems: 1, maxItems: BULK_MAX }),
  comment: Type.Optional(CommentSchema),
}, { additionalProperties: false });
export type BulkDecisionBody = Static<typeof BulkDecisionBodySchema>;

export const BulkResultSchema = Type.Object({ items: Type.Array(ActionSchema) });

export const InstancesSchema = Type.Object({
  action: ActionSchema,
  sha256: Sha256Schema,
  instances: Type.Array(ActionSchema),
  /** What "Apply to N more instances" counts: distinct other devices where the file is quarantined now, not actions. */
  deviceCount: Type.Integer({ minimum: 0, description: 'Distinct other devices where the file is quarantined now (completed and not undone): the N of "Apply to N more instances".' }),
});

export const UndoInstancesBodySchema = Type.Object({
  comment: Type.Optional(CommentSchema),
}, { additionalProperties: false });

export const ActionSummarySchema = Type.Object({
  pendingByType: Type.Array(Type.Object({ type: ActionTypeSchema, count: Type.Integer() })),
  pendingTotal: Type.Integer(),
  oldestPendingAt: Type.Union([TimestampSchema, Type.Null()]),
  oldestPendingAgeSeconds: Type.Union([Type.Integer(), Type.Null()]),
  /** Queued actions that wait because their device's agent is out of contact (or the device has none): how many, on how many devices, and the latest any of them was seen. */
  queuedOffline: Type.Object({ actions: Type.Integer(), devices: Type.Integer(), lastSeenAt: Type.Union([TimestampSchema, Type.Null()]) }),
});

/** The last 30 days of actions, by the day they were requested. Apart from the summary: it reads a month of History, the summary only what is open. */
export const ActionActivitySchema = Type.Object({
  byStatusPerDay: Type.Array(Type.Object({ day: Type.String(), status: ActionStatusSchema, count: Type.Integer() })),
  /** Actions rejected in the last 30 days, expirations included: an expiry is the system's rejection (each keeps its own status above). */
  rejectedLast30Days: Type.Integer(),
  /** Of those, the ones that expired without a decision. */
  expiredLast30Days: Type.Integer(),
});
