import { Type, type Static } from 'typebox';
import { ALERT_CLASSIFICATIONS, ALERT_DETERMINATIONS, ALERT_SEVERITIES, ALERT_STATUSES } from '../enumerations.ts';
import { CommentSchema, IdSchema, TimestampSchema } from './common.ts';


const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
export const MitreTechniqueSchema = Type.String({ pattern: '^T\\d{4}(\\.\\d{3})?$' });
const Sha256 = Type.String({ pattern: '^[a-fA-F0-9]{64}$' });
const Sha1 = Type.String({ pattern: '^[a-fA-F0-9]{40}$' });
const Md5 = Type.String({ pattern: '^[a-fA-F0-9]{32}$' });

/** What happened to a file or registry entry, as a file-integrity monitor saw it. */
export const EVIDENCE_CHANGES = ['added', 'modified', 'deleted'] as const;
const Change = Type.Optional(Type.Enum(EVIDENCE_CHANGES));

/** The hashes a file had before the change an alert reports. */
const PreviousHashesSchema = Type.Object({ sha256: Type.Optional(Sha256), sha1: Type.Optional(Sha1), md5: Type.Optional(Md5) }, { additionalProperties: false });

/** How many engines of a multi-engine scanner flagged a file (VirusTotal's positives of total). */
export const DetectionsSchema = Type.Object({
  engine: Text(64),
  positives: Type.Integer({ minimum: 0, maximum: 10_000 }),
  total: Type.Integer({ minimum: 0, maximum: 10_000 }),
}, { additionalProperties: false });

/** The process that started another. */
const ParentProcessSchema = Type.Object({
  name: Text(1024),
  path: Type.Optional(Text(4096)),
  commandLine: Type.Optional(Type.String({ maxLength: 32_768 })),
  pid: Type.Optional(Type.Integer({ minimum: 0 })),
}, { additionalProperties: false });

/**
 * What an alert is about, one entity each. Names, paths and command lines
 * come from attackers: they are stored and shown as data only.
 */
export const EvidenceSchema = Type.Union([
  Type.Object({
    kind: Type.Literal('file'), path: Text(4096), sha256: Type.Optional(Sha256), sha1: Type.Optional(Sha1), md5: Type.Optional(Md5),
    /** added, modified or deleted, when a file-integrity monitor reported the change. */
    change: Change,
    /** The hashes before a modification or deletion. */
    before: Type.Optional(PreviousHashesSchema),
    detections: Type.Optional(DetectionsSchema),
  }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('process'), name: Text(1024), commandLine: Type.Optional(Type.String({ maxLength: 32_768 })), pid: Type.Optional(Type.Integer({ minimum: 0 })),
    path: Type.Optional(Text(4096)), sha256: Type.Optional(Sha256), sha1: Type.Optional(Sha1), md5: Type.Optional(Md5),
    /** The account it runs as, as the source wrote it (DOMAIN\\user or user). */
    user: Type.Optional(Text(256)),
    parent: Type.Optional(ParentProcessSchema),
  }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('service'), name: Text(1024) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('driver'), name: Text(1024) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('scheduled_task'), name: Text(1024), path: Type.Optional(Text(4096)) }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('registry_key'), key: Text(4096),
    /** The value's name under the key. */
    value: Type.Optional(Type.String({ maxLength: 1024 })),
    /** The value's data, as text. */
    data: Type.Optional(Type.String({ maxLength: 4096 })),
    change: Change,
  }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('user'), name: Text(256), domain: Type.Optional(Type.String({ maxLength: 256 })) }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('ip'), address: Type.Union([Type.String({ format: 'ipv4' }), Type.String({ format: 'ipv6' })]),
    /** source or destination of the connection the alert reports. */
    role: Type.Optional(Type.Enum(['source', 'destination'] as const)),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65_535 })),
  }, { additionalProperties: false }),
  /** A URL, or a bare domain name (a DNS query's). */
  Type.Object({ kind: Type.Literal('url'), url: Text(4096) }, { additionalProperties: false }),
]);
export type Evidence = Static<typeof EvidenceSchema>;

/** Where a detection engine saw an alert: its own agent, the log, the lines before. */
export const AlertOriginSchema = Type.Object({
  /** The engine's id for its agent on the host (Wazuh agent.id, Elastic agent.id). */
  agentId: Type.Union([Type.String(), Type.Null()]),
  agentName: Type.Union([Type.String(), Type.Null()]),
  /** The host's address as the engine knew it. */
  agentIp: Type.Union([Type.String(), Type.Null()]),
  /** The log or module the event came from (Wazuh location, ECS event.dataset). */
  location: Type.Union([Type.String(), Type.Null()]),
  /** The events before it that the rule also used (Wazuh previous_output). */
  previousOutput: Type.Union([Type.String(), Type.Null()]),
});
export type AlertOrigin = Static<typeof AlertOriginSchema>;

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
  /** The detection rule's id in the sender's engine. */
  ruleId: Type.Optional(Text(128)),
  /** MITRE ATT&CK technique ids, e.g. T1059 or T1059.001. */
  mitreTechniques: Type.Optional(Type.Array(MitreTechniqueSchema, { maxItems: 50, uniqueItems: true })),
  /** MITRE ATT&CK tactic names, e.g. Execution. */
  mitreTactics: Type.Optional(Type.Array(Text(128), { maxItems: 20, uniqueItems: true })),
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
  ruleId: Type.Union([Type.String(), Type.Null()]),
  mitreTechniques: Type.Array(Type.String()),
  mitreTactics: Type.Array(Type.String()),
  /** Where the detection engine saw it, as it said: null when the sender said nothing of it. */
  origin: Type.Union([AlertOriginSchema, Type.Null()]),
});
export type Alert = Static<typeof AlertSchema>;

/**
 * How an alert from another engine found its device: by the engine's own
 * agent id, by host name or FQDN, by the host's last known address, as a new
 * unmanaged device, or as the device of the same alert delivered before.
 */
export const DEVICE_MATCHES = ['source_agent_id', 'host_name', 'address', 'created', 'already_stored'] as const;

/**
 * The answer to an alert from another engine (Wazuh, ECS): the stored alert
 * and the device it landed on; `managed: false` is a device without a Quell
 * agent, `created: true` one this alert made Quell learn of.
 */
export const IngestedAlertSchema = Type.Object({
  ...AlertSchema.properties,
  device: Type.Object({
    id: IdSchema,
    name: Type.String(),
    managed: Type.Boolean(),
    created: Type.Boolean(),
    matchedBy: Type.Enum(DEVICE_MATCHES),
  }),
});
export type IngestedAlert = Static<typeof IngestedAlertSchema>;

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
