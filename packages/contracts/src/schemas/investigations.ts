import { Type, type Static } from 'typebox';
import { INVESTIGATION_STATUSES } from '../enumerations.ts';
import { ActionSchema } from './actions.ts';
import { IdSchema, TimestampSchema } from './common.ts';


export const VERDICTS = ['malicious', 'suspicious', 'no_threats_found'] as const;
export type Verdict = (typeof VERDICTS)[number];

export const InvestigationEntitySchema = Type.Object({
  deviceId: IdSchema,
  deviceName: Type.String(),
  /**
   * `file` or `process` (a file running on the device); for what launches a
   * malicious file, `scheduled_task` (a cron line or file, a timer),
   * `service` or `startup_entry` (a shell startup line, a key, a preloaded
   * library, a profile.d file).
   */
  kind: Type.String(),
  /**
   * The file's SHA-256 for files (until its device hashes it, one an alert
   * knows only by SHA-1, MD5 or path is "sha1:…", "md5:…" or "path:…"); for a
   * launcher, the entity key of its removal (path, name and line).
   */
  value: Type.String(),
  path: Type.Union([Type.String(), Type.Null()]),
  verdict: Type.Union([Type.Enum(VERDICTS), Type.Null()]),
  /** Why it got its verdict, in words: the rule that decided, with the facts that made it. */
  reason: Type.Union([Type.String(), Type.Null()]),
  /** Every fact the verdict weighed, in words: its package, detections, location, persistence, alerts, how common it is in the fleet. */
  facts: Type.Array(Type.String()),
  /** The remediation the investigation follows for it: its own proposal, or one already open (or rejected) that it joined instead of proposing it twice. */
  actionId: Type.Union([IdSchema, Type.Null()], {
    description: 'The remediation the investigation follows for this entity: its own proposal, or the same action already proposed by another investigation or an analyst (open, or rejected with nothing new since), which it joined instead of proposing it again.',
  }),
});

export const InvestigationLogEntrySchema = Type.Object({
  step: Type.String(),
  startedAt: TimestampSchema,
  endedAt: TimestampSchema,
  result: Type.String(),
});

/** The most failed steps an investigation keeps: the newest. */
export const INVESTIGATION_PROBLEMS_MAX = 20;

export const InvestigationProblemSchema = Type.Object({
  step: Type.String(),
  at: TimestampSchema,
  reason: Type.String(),
});
export type InvestigationProblem = Static<typeof InvestigationProblemSchema>;

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
  /**
   * Steps that failed and why (an agent's answer that was not what it
   * should be, a step that could not run), newest last: each was retried a
   * few times, then the investigation went on with what it had.
   */
  problems: Type.Array(InvestigationProblemSchema),
  /**
   * Why it ended, in words, without the log: what was remediated and what
   * is left (and why: rejected, failed, expired), that no threat was found
   * and what was looked at, the reason it failed, or who ended it. Null
   * while it runs.
   */
  conclusion: Type.Union([Type.String(), Type.Null()]),
});
export type Investigation = Static<typeof InvestigationSchema>;

export const InvestigationDetailSchema = Type.Object({
  investigation: InvestigationSchema,
  alertIds: Type.Array(IdSchema),
  entities: Type.Array(InvestigationEntitySchema),
  log: Type.Array(InvestigationLogEntrySchema),
  actions: Type.Array(ActionSchema, {
    description: "The investigation's own actions and those it joined (see entities[].actionId): an action's investigationId names the investigation that proposed it.",
  }),
  /** The investigation found its files on ten or more other devices and waits for an analyst before following them there. */
  pendingExpansion: Type.Union([Type.Object({ devices: Type.Array(Type.Object({ id: IdSchema, name: Type.String() })), askedAt: TimestampSchema }), Type.Null()]),
});

/** `alertId`: the investigations that alert started or joined. */
export const ListInvestigationsQuerySchema = Type.Object({ alertId: Type.Optional(IdSchema) }, { additionalProperties: false });
export type ListInvestigationsQuery = Static<typeof ListInvestigationsQuerySchema>;

export const StartInvestigationBodySchema = Type.Object({ deviceId: IdSchema }, { additionalProperties: false });
