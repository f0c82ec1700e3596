import { Type, type Static } from 'typebox';
import { ActionSchema } from './actions.ts';
import { IdSchema, TimestampSchema } from './common.ts';

export const INVESTIGATION_STATUSES = [
  'running', 'pending_action', 'remediated', 'partially_remediated', 'no_threats_found', 'failed', 'terminated_by_user', 'terminated_by_system',
] as const;
export type InvestigationStatus = (typeof INVESTIGATION_STATUSES)[number];
/** The statuses of an investigation that has ended. */
export const INVESTIGATION_ENDED: readonly InvestigationStatus[] = ['remediated', 'partially_remediated', 'no_threats_found', 'failed', 'terminated_by_user', 'terminated_by_system'];

export const VERDICTS = ['malicious', 'suspicious', 'no_threats_found'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const InvestigationEntitySchema = Type.Object({
  deviceId: IdSchema,
  deviceName: Type.String(),
  kind: Type.String(),
  /** The file's SHA-256 for files. */
  value: Type.String(),
  path: Type.Union([Type.String(), Type.Null()]),
  verdict: Type.Union([Type.Enum(VERDICTS), Type.Null()]),
  /** Why it got its verdict, in words. */
  reason: Type.Union([Type.String(), Type.Null()]),
  actionId: Type.Union([IdSchema, Type.Null()]),
});

export const InvestigationLogEntrySchema = Type.Object({
  step: Type.String(),
  startedAt: TimestampSchema,
  endedAt: TimestampSchema,
  result: Type.String(),
});

export const InvestigationSchema = Type.Object({
  id: IdSchema,
  status: Type.Enum(INVESTIGATION_STATUSES),
  deviceId: IdSchema,
  deviceName: Type.String(),
  deviceGroupId: Type.Union([IdSchema, Type.Null()]),
  startedBy: Type.String(),
  startedAt: TimestampSchema,
  endedAt: Type.Union([TimestampSchema, Type.Null()]),
  /** Time spent waiting for analysts' decisions, apart from working time. */
  waitingSeconds: Type.Integer(),
  updatedAt: TimestampSchema,
});
export type Investigation = Static<typeof InvestigationSchema>;

export const InvestigationDetailSchema = Type.Object({
  investigation: InvestigationSchema,
  alertIds: Type.Array(IdSchema),
  entities: Type.Array(InvestigationEntitySchema),
  log: Type.Array(InvestigationLogEntrySchema),
  actions: Type.Array(ActionSchema),
  /** The investigation found its files on ten or more other devices and waits for an analyst before following them there. */
  pendingExpansion: Type.Union([Type.Object({ devices: Type.Array(Type.Object({ id: IdSchema, name: Type.String() })), askedAt: TimestampSchema }), Type.Null()]),
});

export const StartInvestigationBodySchema = Type.Object({ deviceId: IdSchema }, { additionalProperties: false });
