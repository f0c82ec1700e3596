import { Type, type Static } from 'typebox';
import { AUTOMATION_LEVELS } from '../enumerations.ts';
import { PLATFORMS } from '../catalogue.ts';
import { IdSchema, TimestampSchema } from './common.ts';


export const PlatformSchema = Type.Enum(PLATFORMS);

/** An agent that has not been heard from for this long counts as offline (it is pinged every 15 s). */
export const DEVICE_OFFLINE_AFTER_MS = 45_000;
export const DEVICE_HEALTH = ['online', 'offline', 'unmanaged'] as const;
export type DeviceHealth = (typeof DEVICE_HEALTH)[number];

export const DeviceSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  platform: PlatformSchema,
  groupId: Type.Union([IdSchema, Type.Null()]),
  createdAt: TimestampSchema,
  lastSeenAt: Type.Union([TimestampSchema, Type.Null()]),
  /** unmanaged: no enrolled agent; online/offline from the agent's last contact. */
  health: Type.Enum(DEVICE_HEALTH),
  /** The detection source whose alert made Quell learn of this host (an unmanaged device); null when registered by hand or by its agent. */
  discoveredFrom: Type.Union([Type.String(), Type.Null()]),
  /** The addresses alerts reported for it, most recently seen first: what contain_device blocks for a device without an agent. */
  addresses: Type.Array(Type.String()),
  agent: Type.Union([Type.Object({
    os: Type.String(),
    kernel: Type.String(),
    agentVersion: Type.String(),
    ips: Type.Array(Type.String()),
    enrolledAt: TimestampSchema,
    /**
     * The desired state (containment and indicators) as the agent last reported it, signed:
     * the version it applied, and what it could not enforce — as a whole (`error`), its address
     * indicators (`addressIndicators`), its domain and URL indicators (`dnsIndicators`), by words.
     */
    desiredState: Type.Object({
      version: Type.Union([Type.Integer(), Type.Null()]),
      error: Type.Union([Type.String(), Type.Null()]),
      addressIndicators: Type.Union([Type.String(), Type.Null()]),
      dnsIndicators: Type.Union([Type.String(), Type.Null()]),
    }),
  }), Type.Null()]),
  /** Offboarding asked of its agent, which is told when it next connects and is revoked once it reports. */
  offboarding: Type.Union([Type.Object({ requestedAt: TimestampSchema, releaseEffects: Type.Boolean() }), Type.Null()]),
  /** The last offboarding done on this device, as its agent reported it. */
  offboarded: Type.Union([Type.Object({
    at: TimestampSchema,
    released: Type.Array(Type.String()),
    kept: Type.Array(Type.String()),
    failures: Type.Array(Type.String()),
    vault: Type.Object({ files: Type.Integer(), instructions: Type.Union([Type.String(), Type.Null()]) }),
  }), Type.Null()]),
  /** Its actions waiting for approval. */
  pendingActions: Type.Integer(),
  /** Its approved actions waiting to be delivered to its agent (containment aside: other devices' agents carry it). */
  queuedActions: Type.Integer(),
  /** What is in force on the device: the completed actions not undone (an undo under way still counts until it completes, and is named in `releasing`). */
  state: Type.Object({
    isolatedBy: Type.Union([IdSchema, Type.Null()]),
    codeRestrictedBy: Type.Union([IdSchema, Type.Null()]),
    containedUsers: Type.Array(Type.Object({ name: Type.String(), actionId: IdSchema })),
    /** Those of the actions above whose undo is under way. */
    releasing: Type.Array(IdSchema),
    /**
     * For a device contained by address (one without an agent): each address
     * and the contain_device action that the fleet's agents enforce for it,
     * from its approval until its release is asked for.
     */
    containment: Type.Array(Type.Object({ address: Type.String(), actionId: IdSchema })),
  }),
});
export type Device = Static<typeof DeviceSchema>;
export type DeviceState = Device['state'];

export const CreateDeviceBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  platform: PlatformSchema,
  groupId: Type.Optional(IdSchema),
}, { additionalProperties: false });
export type CreateDeviceBody = Static<typeof CreateDeviceBodySchema>;

/**
 * Puts a device in a device group by hand, where the groups' rules leave it;
 * null hands it back to the rules. Its past actions and alerts keep the group they had.
 */
export const UpdateDeviceBodySchema = Type.Object({ groupId: Type.Union([IdSchema, Type.Null()]) }, { additionalProperties: false });
export type UpdateDeviceBody = Static<typeof UpdateDeviceBodySchema>;

/** Which devices a group takes: every condition given must hold; `namePattern` matches the device name, `*` for any text, any case. */
export const DeviceGroupRuleSchema = Type.Object({
  namePattern: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  platform: Type.Optional(PlatformSchema),
}, { additionalProperties: false, minProperties: 1 });
export type DeviceGroupRule = Static<typeof DeviceGroupRuleSchema>;

export const DeviceGroupSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  /** A device belongs to the highest-ranked group whose rule matches it (higher number, higher rank). */
  rank: Type.Integer(),
  automationLevel: Type.Enum(AUTOMATION_LEVELS),
  /** null: the group takes devices only by hand. */
  rule: Type.Union([DeviceGroupRuleSchema, Type.Null()]),
  createdAt: TimestampSchema,
});
export type DeviceGroup = Static<typeof DeviceGroupSchema>;

export const CreateDeviceGroupBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  rank: Type.Integer({ minimum: 0, maximum: 100000 }),
  automationLevel: Type.Enum(AUTOMATION_LEVELS),
  rule: Type.Optional(Type.Union([DeviceGroupRuleSchema, Type.Null()])),
}, { additionalProperties: false });
export type CreateDeviceGroupBody = Static<typeof CreateDeviceGroupBodySchema>;

export const UpdateDeviceGroupBodySchema = Type.Partial(CreateDeviceGroupBodySchema, { additionalProperties: false, minProperties: 1 });
export type UpdateDeviceGroupBody = Static<typeof UpdateDeviceGroupBodySchema>;
