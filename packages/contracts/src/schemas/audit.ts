import { Type, type Static } from 'typebox';
import { TimestampSchema } from './common.ts';

export const AuditEntrySchema = Type.Object({
  seq: Type.Integer(),
  at: TimestampSchema,
  actor: Type.String(),
  sourceIp: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String(),
  targetType: Type.String(),
  targetId: Type.Union([Type.String(), Type.Null()]),
  /** What the target is called now (a device's name, an action's type and entity, a user's name…); null when it is gone or has no name. */
  targetName: Type.Union([Type.String(), Type.Null()]),
  /** For an agent's act (`agent:<device id>`), its device's name; null otherwise. */
  actorName: Type.Union([Type.String(), Type.Null()]),
  before: Type.Unknown(),
  after: Type.Unknown(),
  deviceGroupIds: Type.Union([Type.Array(Type.String()), Type.Null()], {
    description: 'The device groups of the devices the entry concerns ([] when they are in no group, or for an indicator of every group); null when it concerns no device (users, tokens, settings, sign-ins)',
  }),
  hash: Type.String(),
}, {
  description: 'An audit entry. A user scoped to device groups reads their own acts and the entries whose device groups all lie in their scope; '
    + 'entries that concern no device are read by unscoped Security Administrators and up (and by whoever acted).',
});
export type AuditEntry = Static<typeof AuditEntrySchema>;

export const ListAuditQuerySchema = Type.Object({
  actor: Type.Optional(Type.String({ maxLength: 128 })),
  kind: Type.Optional(Type.String({ maxLength: 64 })),
  targetId: Type.Optional(Type.String({ maxLength: 64 })),
  from: Type.Optional(TimestampSchema),
  to: Type.Optional(TimestampSchema),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500 })),
  /** The seq to continue below (pages go newest first). */
  before: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
}, { additionalProperties: false });
export type ListAuditQuery = Static<typeof ListAuditQuerySchema>;

export const AuditPageSchema = Type.Object({
  items: Type.Array(AuditEntrySchema),
  nextBefore: Type.Union([Type.Integer(), Type.Null()]),
});

export const AuditVerificationSchema = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Optional(Type.Integer()),
  /** The first entry whose content, link or position does not match, when not ok. */
  firstBadSeq: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  reason: Type.Optional(Type.Union([Type.String(), Type.Null()])),
}, {
  description: 'The whole chain is always verified. checked, firstBadSeq and reason are given to unscoped readers only: '
    + 'a user scoped to device groups is told whether the chain is intact, nothing about other groups\' entries.',
});
export type AuditVerification = Static<typeof AuditVerificationSchema>;
