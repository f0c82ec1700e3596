import { Type, type Static } from 'typebox';

/** Ids are UUIDs (version 7: they sort by creation time). */
export const IdSchema = Type.String({ format: 'uuid', maxLength: 36 });
export const IdParamsSchema = Type.Object({ id: IdSchema }, { additionalProperties: false });
export const TimestampSchema = Type.String({ format: 'date-time', maxLength: 40 });
export const CommentSchema = Type.String({ maxLength: 2000 });

/** The body of every error response (`application/problem+json`). */
export const ProblemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  code: Type.String(),
  detail: Type.String(),
  requestId: Type.String(),
  /** Per-action reasons on bulk calls, e.g. the current status of each action that is no longer pending. */
  actions: Type.Optional(Type.Array(Type.Object({ id: Type.String(), status: Type.Optional(Type.String()), decidedBy: Type.Optional(Type.Union([Type.String(), Type.Null()])) }))),
});
export type Problem = Static<typeof ProblemSchema>;

export const OkSchema = Type.Object({ ok: Type.Boolean() });
