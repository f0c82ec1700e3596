import { Type, type Static } from 'typebox';
import { ActionSchema } from './actions.ts';
import { ALERT_SEVERITIES } from '../enumerations.ts';
import { AlertSchema } from './alerts.ts';
import { IdSchema, TimestampSchema } from './common.ts';
import { InvestigationSchema, VERDICTS } from './investigations.ts';

export const INCIDENT_STATUSES = ['active', 'resolved'] as const;

export const IncidentSchema = Type.Object({
  id: IdSchema,
  title: Type.String(),
  status: Type.Enum(INCIDENT_STATUSES),
  /** The highest severity among its alerts. */
  severity: Type.Enum(ALERT_SEVERITIES),
  alertCount: Type.Integer(),
  deviceCount: Type.Integer(),
  firstActivityAt: TimestampSchema,
  lastActivityAt: TimestampSchema,
  updatedAt: TimestampSchema,
});
export type Incident = Static<typeof IncidentSchema>;

export const IncidentDetailSchema = Type.Object({
  incident: IncidentSchema,
  alerts: Type.Array(AlertSchema),
  devices: Type.Array(Type.Object({ id: IdSchema, name: Type.String() })),
  /** Every hash, address, URL, user… its alerts name, with the devices it was seen on. */
  evidence: Type.Array(Type.Object({ kind: Type.String(), value: Type.String(), deviceIds: Type.Array(IdSchema) })),
  investigations: Type.Array(InvestigationSchema),
  /** The actions of its investigations: the Evidence and response view (pending ones can be decided there). */
  actions: Type.Array(ActionSchema),
  /** The verdict each of those actions remediates, and why, as its investigation judged it. */
  verdicts: Type.Array(Type.Object({ actionId: IdSchema, verdict: Type.Enum(VERDICTS), reason: Type.Union([Type.String(), Type.Null()]) })),
});

export const UpdateIncidentBodySchema = Type.Object({ status: Type.Enum(INCIDENT_STATUSES) }, { additionalProperties: false });
export type UpdateIncidentBody = Static<typeof UpdateIncidentBodySchema>;
