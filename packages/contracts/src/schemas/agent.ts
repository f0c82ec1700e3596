import { Type, type Static } from 'typebox';
import { DOMAIN_NAME } from '../addresses.ts';
import { ACTION_CATALOGUE, ACTION_TYPES, type ActionType, PLATFORMS } from '../catalogue.ts';
import { type ActionParameters, MUST, UUID } from '../parameters.ts';
import { IdSchema, TimestampSchema } from './common.ts';

/**
 * The agent protocol (DESIGN.md §3): enrolment over HTTPS, then one
 * WebSocket the agent dials out. Commands are JWS (EdDSA) signed by the
 * server; results are JWS signed by the agent.
 */
export const AGENT_PROTOCOL_VERSION = 1;
/** Where the agent keeps its identity, journal and quarantine vault unless told otherwise. */
export const DEFAULT_AGENT_DIR = '/var/lib/quell-agent';
/** Frames larger than this are refused and the connection closed. */
export const AGENT_MAX_FRAME_BYTES = 256 * 1024;

/** An Ed25519 public key as a JWK. */
export const Ed25519PublicJwkSchema = Type.Object({
  kty: Type.Literal('OKP'),
  crv: Type.Literal('Ed25519'),
  x: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
}, { additionalProperties: true });
export type Ed25519PublicJwk = Static<typeof Ed25519PublicJwkSchema>;

export const DeviceFactsSchema = Type.Object({
  hostname: Type.String({ minLength: 1, maxLength: 255 }),
  platform: Type.Enum(PLATFORMS),
  os: Type.String({ maxLength: 255 }),
  kernel: Type.String({ maxLength: 255 }),
  ips: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 }),
  macs: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 64 }),
  agentVersion: Type.String({ maxLength: 64 }),
}, { additionalProperties: false });
export type DeviceFacts = Static<typeof DeviceFactsSchema>;

export const EnrolBodySchema = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 200 }),
  publicKey: Ed25519PublicJwkSchema,
  facts: DeviceFactsSchema,
}, { additionalProperties: false });
export type EnrolBody = Static<typeof EnrolBodySchema>;

export const EnrolResponseSchema = Type.Object({
  deviceId: IdSchema,
  /** The server's command-signing key: the agent pins it and trusts nothing else. */
  serverKey: Ed25519PublicJwkSchema,
  serverKeyId: Type.String(),
});
export type EnrolResponse = Static<typeof EnrolResponseSchema>;

export const CreateEnrolmentTokenBodySchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  uses: Type.Integer({ minimum: 1, maximum: 100_000 }),
  expiresInDays: Type.Integer({ minimum: 1, maximum: 90 }),
}, { additionalProperties: false });
export type CreateEnrolmentTokenBody = Static<typeof CreateEnrolmentTokenBodySchema>;

export const EnrolmentTokenSchema = Type.Object({
  id: IdSchema,
  name: Type.String(),
  usesLeft: Type.Integer(),
  expiresAt: TimestampSchema,
  revokedAt: Type.Union([TimestampSchema, Type.Null()]),
});
export type EnrolmentToken = Static<typeof EnrolmentTokenSchema>;
export const CreatedEnrolmentTokenSchema = Type.Object({ token: EnrolmentTokenSchema, secret: Type.String() });

/*
 * What the server signs for agents, checked by the agent before it believes
 * anything in it: a command for one action on one device, the desired state
 * of the fleet, the word to offboard.
 */

/** An id in a message: a UUID in lower case, as the server writes them (they become file names on endpoints). */
const AgentIdSchema = Type.String({ pattern: UUID.source, maxLength: 36 });
/** Seconds since the epoch, as in JWT. */
const IssuedAtSchema = Type.Integer({ minimum: 0 });

/** What the server signs for one action on one device; its parameters are then checked against its type's (ACTION_PARAMETER_SCHEMAS). */
export const CommandPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  actionId: Type.String({ pattern: UUID.source, [MUST]: 'be a UUID' }),
  deviceId: AgentIdSchema,
  type: Type.Enum(ACTION_TYPES, { [MUST]: 'be an action type' }),
  entity: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 1024, [MUST]: 'be 1 to 1024 characters' }),
    sha256: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{64}$', [MUST]: 'be a SHA-256' })),
    path: Type.Optional(Type.String({ maxLength: 4096, [MUST]: 'be at most 4096 characters' })),
  }),
  parameters: Type.Record(Type.String(), Type.Unknown(), { [MUST]: 'be an object' }),
  /** For undo types: the action whose prior state this one restores. */
  undoOf: Type.Union([AgentIdSchema, Type.Null()], { [MUST]: 'be null or a UUID' }),
  iat: IssuedAtSchema,
  exp: IssuedAtSchema,
  nonce: Type.String({ minLength: 16, maxLength: 128, [MUST]: 'be 16 to 128 characters' }),
});
export type CommandPayload = Omit<Static<typeof CommandPayloadSchema>, 'parameters'> & {
  /** As ACTION_PARAMETER_SCHEMAS has them for the type. */
  parameters: ActionParameters;
};
/** A command of one type, its parameters typed as that type takes them: what an executor of the type receives. */
export type CommandOf<T extends ActionType> = CommandPayload & { type: T; parameters: ActionParameters<T> };

/** Free text an agent sends: the frame size bounds it, the server keeps a part of it. */
const AgentTextSchema = Type.String({ maxLength: AGENT_MAX_FRAME_BYTES });

/*
 * Every message from an agent is one of the schemas below, checked by the
 * server before it believes anything in it. Extra properties are allowed
 * (a newer agent may say more than an older server reads) and ignored.
 */

/** What the agent signs when it reports the end of an action. */
export const ResultPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  actionId: AgentIdSchema,
  deviceId: AgentIdSchema,
  outcome: Type.Enum(['completed', 'failed'] as const),
  /** Free text, or for the types in ACTION_REPORT_SCHEMAS the JSON report of that schema. */
  output: Type.Optional(AgentTextSchema),
  error: Type.Optional(AgentTextSchema),
  iat: IssuedAtSchema,
});
export type ResultPayload = Static<typeof ResultPayloadSchema>;

/** One contained address: traffic to and from it is dropped on every managed device. */
export const ContainmentEntrySchema = Type.Object({
  /** The contain_device action that put it there. */
  actionId: Type.String({ maxLength: 64 }),
  address: Type.String({ maxLength: 64 }),
  mac: Type.Optional(Type.String({ maxLength: 32 })),
});
export type ContainmentEntry = Static<typeof ContainmentEntrySchema>;

const hashes = (pattern: string) => Type.Array(Type.String({ pattern }));
const SHA256_HEX = '^[0-9a-f]{64}$';
const ANY_HASH_HEX = '^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$';
/** The most entries one list of a state may carry: a set of this size is applied in well under a second. */
export const STATE_LIST_MAX = 200_000;
const addressList = Type.Array(Type.String({ maxLength: 64 }), { maxItems: STATE_LIST_MAX });
const domainList = Type.Array(Type.String({ pattern: DOMAIN_NAME.source }), { maxItems: STATE_LIST_MAX });

export const StatePayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  kind: Type.Literal('quell-state'),
  version: Type.Integer({ minimum: 1 }),
  containment: Type.Array(ContainmentEntrySchema),
  /**
   * Files the agent's antivirus treats as malicious beyond its built-in
   * signatures (block indicators), by SHA-256, SHA-1 or MD5; the last two
   * are absent from states of servers that sent SHA-256 only. `remediate`
   * holds the blocked hashes (of any kind) whose indicators also remediate:
   * a file refused when something tries to run it is quarantined only then.
   * `audit` holds hashes of any of the three kinds whose files are reported,
   * not quarantined.
   */
  antivirus: Type.Object({
    blockSha256: hashes(SHA256_HEX),
    blockSha1: Type.Optional(hashes('^[0-9a-f]{40}$')),
    blockMd5: Type.Optional(hashes('^[0-9a-f]{32}$')),
    remediate: Type.Optional(hashes(ANY_HASH_HEX)),
    audit: Type.Optional(hashes(ANY_HASH_HEX)),
  }),
  /**
   * Addresses and CIDR ranges traffic from and to which is dropped (block
   * indicators), those let through all the same (allow indicators), and
   * those let through and reported (audit indicators); absent from states
   * of older servers. Each is an address or range as addressOrRange spells it.
   */
  network: Type.Optional(Type.Object({ blockAddresses: addressList, allowAddresses: Type.Optional(addressList), auditAddresses: Type.Optional(addressList) })),
  /**
   * Domain names (and the host names of URL indicators) the agent's DNS
   * filter refuses, lets through and reports, or always lets through; each
   * holds its subdomains. Absent from states of older servers.
   */
  dns: Type.Optional(Type.Object({ block: domainList, audit: domainList, allow: domainList })),
  iat: IssuedAtSchema,
});
/**
 * The desired state every agent enforces, signed by the server once per
 * version for each device group (block indicators can be scoped to groups;
 * containment is the same for all). Versions only grow: an agent never goes
 * back to an older state it is shown again.
 */
export type StatePayload = Static<typeof StatePayloadSchema>;

/**
 * The server's signed word that a device is offboarded: the agent releases
 * what Quell put in force (unless `releaseEffects` is false), leaves its vault
 * with instructions, removes its identity, reports, and stops for good.
 */
export const OffboardPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  kind: Type.Literal('quell-offboard'),
  deviceId: AgentIdSchema,
  releaseEffects: Type.Boolean(),
  iat: IssuedAtSchema,
});
export type OffboardPayload = Static<typeof OffboardPayloadSchema>;

export const OffboardBodySchema = Type.Object({
  /** False leaves what Quell put in force (isolation, restriction, contained users) in place; true (the default) releases it. */
  releaseEffects: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

/** Lines of an offboarding report: what was released, kept or could not be. */
const ReportLinesSchema = Type.Array(AgentTextSchema, { maxItems: 1000 });

/** What the agent signs when it has offboarded itself. */
export const OffboardedPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  deviceId: AgentIdSchema,
  /** What it released (isolation, restriction, contained users, containment), in words. */
  released: ReportLinesSchema,
  /** What it left in force because it was asked to, in words. */
  kept: ReportLinesSchema,
  /** What it could not release, and why. */
  failures: ReportLinesSchema,
  /** Quarantined files left in its vault, and where the instructions for them are. */
  vault: Type.Object({ files: Type.Integer({ minimum: 0 }), instructions: Type.Union([Type.String({ maxLength: 4096 }), Type.Null()]) }),
  iat: IssuedAtSchema,
});
export type OffboardedPayload = Static<typeof OffboardedPayloadSchema>;

/** What the agent signs after applying a state: the version, and what it could not enforce and why. */
export const StateReportPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  deviceId: AgentIdSchema,
  version: Type.Integer({ minimum: 1 }),
  /** Set when the state as a whole could not be applied. */
  error: Type.Optional(AgentTextSchema),
  /** Entries refused one by one (e.g. the address of the Quell server itself), by action id. */
  failures: Type.Record(Type.String({ maxLength: 64 }), AgentTextSchema),
  iat: IssuedAtSchema,
});
export type StateReportPayload = Static<typeof StateReportPayloadSchema>;

/** The effects an agent keeps true while they are in force, and re-applies when something lifts them. */
export const ENFORCED_EFFECTS = ['isolation', 'containment', 'code_restriction', 'user_containment', 'stopped_service', 'removed_task', 'quarantined_file', 'address_blocks'] as const;
export type EnforcedEffect = (typeof ENFORCED_EFFECTS)[number];
/** The action types whose effect each enforced effect is. */
export const ENFORCED_EFFECT_ACTION_TYPES: Record<EnforcedEffect, readonly ActionType[]> = {
  isolation: ['isolate_device'], containment: ['contain_device'], code_restriction: ['restrict_code_execution'], user_containment: ['contain_user'],
  stopped_service: ['stop_service'], removed_task: ['remove_scheduled_task', 'remove_persistence'], quarantined_file: ['quarantine_file', 'stop_and_quarantine_file'],
  // Block indicators' addresses: the desired state's, no action's.
  address_blocks: [],
};
/** The action types that put an enforced effect in force or take it away: an agent never runs them while it checks those effects. */
export const EFFECT_CHANGING_ACTION_TYPES: ReadonlySet<ActionType> = new Set(Object.values(ENFORCED_EFFECT_ACTION_TYPES).flat()
  .flatMap((type) => [type, ...(ACTION_CATALOGUE[type].undoType ? [ACTION_CATALOGUE[type].undoType] : [])]));

/**
 * What the agent signs when it finds an effect lifted on its device (the
 * firewall reloaded, a remount, a table deleted) and puts it back.
 */
export const DriftPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  deviceId: AgentIdSchema,
  /** The actions whose effect it was (a containment state can hold several). */
  actionIds: Type.Array(AgentIdSchema, { minItems: 1, maxItems: 100 }),
  effect: Type.Enum(ENFORCED_EFFECTS),
  /** What the agent found, in words. */
  found: AgentTextSchema,
  /** Whether the effect holds again; `error` says why not. */
  repaired: Type.Boolean(),
  error: Type.Optional(AgentTextSchema),
  /** When it was found, epoch milliseconds. */
  at: Type.Integer({ minimum: 0 }),
  iat: IssuedAtSchema,
});
export type DriftPayload = Static<typeof DriftPayloadSchema>;

/**
 * An action the agent took on its own (its antivirus quarantined a file),
 * signed, so that the server records it as a completed action that can be
 * undone like any other, and raises an alert.
 */
export const LocalActionPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  deviceId: AgentIdSchema,
  /** Chosen by the agent; its journal keeps the snapshot under this id for the undo. */
  actionId: AgentIdSchema,
  type: Type.Literal('quarantine_file'),
  entity: Type.Object({ name: Type.String({ maxLength: 1024 }), path: Type.String({ pattern: '^/', maxLength: 4096 }), sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
  /** What matched: a built-in signature's name, or "Block indicator". */
  detection: AgentTextSchema,
  output: AgentTextSchema,
  /** When it happened, epoch milliseconds. */
  at: Type.Integer({ minimum: 0 }),
  iat: IssuedAtSchema,
});
export type LocalActionPayload = Static<typeof LocalActionPayloadSchema>;

/** What an indicator does where it matches. */
export const HIT_ACTIONS = ['block', 'audit'] as const;

/** An indicator of the desired state that matched on the device: traffic from or to an address, or a file by a hash. */
export const IndicatorHitSchema = Type.Object({
  /** The state's entry that matched, as the state spells it: an address, a range, a domain (a URL's host) or a hash. */
  value: Type.String({ minLength: 1, maxLength: 253 }),
  action: Type.Enum(HIT_ACTIONS),
  /** Traffic: the address at the other end, and which way the traffic went. */
  remote: Type.Optional(Type.String({ maxLength: 64 })),
  direction: Type.Optional(Type.Enum(['inbound', 'outbound'] as const)),
  /** DNS: the name asked for, or whose address the traffic went to (the value is the domain of the state that holds it). */
  name: Type.Optional(Type.String({ maxLength: 253 })),
  /** Files: where the file was, its SHA-256, and whether the agent quarantined it (its quarantine raised an alert of its own). */
  path: Type.Optional(Type.String({ pattern: '^/', maxLength: 4096 })),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
  quarantined: Type.Optional(Type.Boolean()),
  /** The process and user on the device's side, where the agent could tell. */
  process: Type.Optional(Type.Object({
    pid: Type.Integer({ minimum: 0 }), name: Type.String({ maxLength: 1024 }), commandLine: Type.Optional(Type.String({ maxLength: 32_768 })),
  })),
  user: Type.Optional(Type.String({ maxLength: 256 })),
  /** Packets (traffic) or times seen (files) since the agent's last report, and the first and last of them, epoch milliseconds. */
  count: Type.Integer({ minimum: 1 }),
  firstAt: Type.Integer({ minimum: 0 }),
  lastAt: Type.Integer({ minimum: 0 }),
});
export type IndicatorHit = Static<typeof IndicatorHitSchema>;

/** The most hits one report carries; the agent sends the rest in the next. */
export const INDICATOR_HITS_MAX = 500;

/** What the agent signs to report indicators that matched on its device. */
export const IndicatorHitsPayloadSchema = Type.Object({
  v: Type.Literal(AGENT_PROTOCOL_VERSION),
  deviceId: AgentIdSchema,
  /** Grows with every report of this agent: a report the server already counted is acknowledged again, not counted twice. */
  seq: Type.Integer({ minimum: 1 }),
  hits: Type.Array(IndicatorHitSchema, { minItems: 1, maxItems: INDICATOR_HITS_MAX }),
  iat: IssuedAtSchema,
});
export type IndicatorHitsPayload = Static<typeof IndicatorHitsPayloadSchema>;

/** Frames on the WebSocket, as JSON text. */
export type ServerFrame =
  | { t: 'challenge'; nonce: string }
  | { t: 'welcome'; deviceId: string }
  | { t: 'command'; jws: string }
  | { t: 'state'; jws: string }
  | { t: 'local_ack'; actionId: string }
  | { t: 'offboard'; jws: string }
  /** The server has recorded the result of this action: the agent's journal may let go of its outcome. */
  | { t: 'result_ack'; actionId: string }
  /** The server has counted this indicator hits report (or had already). */
  | { t: 'hits_ack'; seq: number }
  | { t: 'refused'; reason: string };

/** A compact JWS as an agent sends it; its signature is what is checked, the frame size bounds it. */
const AgentJwsSchema = Type.String({ maxLength: AGENT_MAX_FRAME_BYTES });

export const AgentFrameSchema = Type.Union([
  Type.Object({ t: Type.Literal('hello'), deviceId: Type.String({ maxLength: 64 }), signature: Type.String({ maxLength: 256 }) }),
  Type.Object({ t: Type.Literal('ack'), actionId: Type.String({ maxLength: 64 }) }),
  Type.Object({ t: Type.Literal('result'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('state_applied'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('local_action'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('drift'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('offboarded'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('hits'), jws: AgentJwsSchema }),
  Type.Object({ t: Type.Literal('rejected'), actionId: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]), reason: AgentTextSchema }),
]);
export type AgentFrame = Static<typeof AgentFrameSchema>;

/** The largest investigation package the server accepts. */
export const INVESTIGATION_PACKAGE_MAX_BYTES = 64 * 1024 * 1024;
/** What an agent signs to upload an investigation package: the action and the package's SHA-256. */
export const packageUploadMessage = (actionId: string, deviceId: string, sha256: string): string => `quell-package:v1:${actionId}:${deviceId}:${sha256}`;

/** The bytes an agent signs to answer the connection challenge. */
export const challengeMessage = (nonce: string, deviceId: string): string => `quell-agent-hello:v1:${nonce}:${deviceId}`;
