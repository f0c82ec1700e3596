import { Type, type Static } from 'typebox';
import { ACTION_TYPES } from '../catalogue.ts';

export const SettingsSchema = Type.Object({
  pendingExpiryHours: Type.Integer({ minimum: 1, maximum: 24 * 90 }),
  fourEyesActionTypes: Type.Array(Type.Enum(ACTION_TYPES), { maxItems: ACTION_TYPES.length }),
  /** How long a queued action waits for its device before it times out (isolation always waits 3 days). */
  deliveryWindowHours: Type.Integer({ minimum: 1, maximum: 24 * 90 }),
});
export type Settings = Static<typeof SettingsSchema>;

export const UpdateSettingsBodySchema = Type.Partial(SettingsSchema, { additionalProperties: false });
export type UpdateSettingsBody = Static<typeof UpdateSettingsBodySchema>;
