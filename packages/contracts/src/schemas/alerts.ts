import { Type, type Static } from 'typebox';
import { CommentSchema, IdSchema, TimestampSchema } from './common.ts';

export const ALERT_SEVERITIES = ['informational', 'low', 'medium', 'high'] as const;
export const ALERT_STATUSES = ['new', 'in_progress', 'resolved'] as const;
export const ALERT_CLASSIFICATIONS = ['true_positive', 'informational_expected', 'false_positive'] as const;
export const ALERT_DETERMINATIONS = [
  'malware', 'multistage_attack', 'malicious_user_activity', 'unwanted_software', 'phishing', 'compromised_account',
  'security_testing', 'line_of_business_application', 'confirmed_activity', 'not_malicious', 'not_enough_information', 'other',
] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const Sha256 = Type.String({ pattern: '^[a-fA-F0-9]{64}$' });
const Sha1 = Type.String({ pattern: '^[a-fA-F0-9]{40}$' });
const Md5 = Type.String({ pattern: '^[a-fA-F0-9]{32}$' });

/**
 * What an alert is about, one entity each. Names, paths and command lines
 * come from attackers: they are stored and shown as data only.
 */
export const EvidenceSchema = Type.Union([
  Type.Object({ kind: Type.Literal('file'), path: Text(4096), sha256: Type.Optional(Sha256), sha1: Type.Optional(Sha1), md5: Type.Optional(Md5) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('process'), name: Text(1024), commandLine: Type.Optional(Type.String({ maxLength: 32_768 })), pid: Type.Optional(Type.Integer({ minimum: 0 })), path: Type.Optional(Text(4096)), sha256: Type.Optional(Sha256) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('service'), name: Text(1024) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('driver'), name: Text(1024) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('scheduled_task'), name: Text(1024), path: Type.Optional(Text(4096)) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('registry_key'), key: Text(4096), value: Type.Optional(Type.String({ maxLength: 1024 })) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('user'), name: Text(256), domain: Type.Optional(Type.String({ maxLength: 256 })) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('ip'), address: Type.Union([Type.String({ format: 'ipv4' }), Type.String({ format: 'ipv6' })]) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('url'), url: Text(4096) }, { additionalProperties: false }),
]);
export type Evidence = Static<typeof EvidenceSchema>;

export const CreateAlertBodySchema = Type.Object({
  title: Text(500),
  description: Type.Optional(Type.String({ maxLength: 10_000 })),
  severity: Type.Enum(ALERT_SEVERITIES),
  category: Text(128),
  /** Which detection raised it, e.g. "antivirus", "wazuh", "edr-rules". */
  detectionSource: Text(128),
  /** The sender's own id: sending the same alert again returns the stored one instead of a duplicate. */
  externalId: Type.Optional(Text(256)),
  deviceId: IdSchema,
  occurredAt: TimestampSchema,
  evidence: Type.Array(EvidenceSchema, { maxItems: 100 }),
}, { additionalProperties: false });
export type CreateAlertBody = Static<typeof CreateAlertBodySchema>;

export const AlertSchema = Type.Object({
  id: IdSchema,
  title: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  severity: Type.Enum(ALERT_SEVERITIES),
  category: Type.String(),
  detectionSource: Type.String(),
  externalId: Type.Union([Type.String(), Type.Null()]),
  deviceId: IdSchema,
  deviceName: Type.String(),
  deviceGroupId: Type.Union([IdSchema, Type.Null()]),
  occurredAt: TimestampSchema,
  receivedAt: TimestampSchema,
  status: Type.Enum(ALERT_STATUSES),
  classification: Type.Union([Type.Enum(ALERT_CLASSIFICATIONS), Type.Null()]),
  determination: Type.Union([Type.Enum(ALERT_DETERMINATIONS), Type.Null()]),
  updatedAt: TimestampSchema,
  updatedBy: Type.Union([Type.String(), Type.Null()]),
  evidence: Type.Array(EvidenceSchema),
  /** The incident the alert was correlated into. */
  incidentId: Type.Union([IdSchema, Type.Null()]),
});
export type Alert = Static<typeof AlertSchema>;

export const UpdateAlertBodySchema = Type.Object({
  status: Type.Optional(Type.Enum(ALERT_STATUSES)),
  classification: Type.Optional(Type.Union([Type.Enum(ALERT_CLASSIFICATIONS), Type.Null()])),
  determination: Type.Optional(Type.Union([Type.Enum(ALERT_DETERMINATIONS), Type.Null()])),
  comment: Type.Optional(CommentSchema),
}, { additionalProperties: false, minProperties: 1 });
export type UpdateAlertBody = Static<typeof UpdateAlertBodySchema>;

/** One flow for a false positive: classify the alert, undo what was done about it, and allow its files from now on. */
export const FalsePositiveBodySchema = Type.Object({
  /** none; the remediation this alert led to; or that and every other quarantine of the same files. */
  undo: Type.Enum(['none', 'remediation', 'all_instances'] as const),
  /** An allow indicator for each file hash the alert names, so it is never remediated again. */
  allowIndicator: Type.Boolean(),
  comment: Type.Optional(CommentSchema),
}, { additionalProperties: false });
export type FalsePositiveBody = Static<typeof FalsePositiveBodySchema>;

export const ListAlertsQuerySchema = Type.Object({
  status: Type.Optional(Type.Enum(ALERT_STATUSES)),
  severity: Type.Optional(Type.Enum(ALERT_SEVERITIES)),
  deviceId: Type.Optional(IdSchema),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false });
export type ListAlertsQuery = Static<typeof ListAlertsQuerySchema>;

export const AlertPageSchema = Type.Object({ items: Type.Array(AlertSchema), nextCursor: Type.Union([Type.String(), Type.Null()]) });
