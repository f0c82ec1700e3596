import { type Static, type TObject, type TProperties, Type } from 'typebox';
import { ACTION_CATALOGUE, ACTION_TYPES, type ActionType } from './catalogue.ts';

/** Action ids become file names on endpoints (the vault, package folders): only a UUID is ever one. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The most files one evidence request may name (`collect_evidence`'s `paths`), and their length together: a command fits in one agent frame. */
export const EVIDENCE_MAX_PATHS = 100;
export const EVIDENCE_MAX_PATHS_CHARS = 128 * 1024;

/** A MAC address, its octets separated by colons or hyphens (`52:54:00:12:34:56`, `52-54-00-12-34-56`); stored as `canonicalMac` spells it. */
export const MAC_ADDRESS = /^([0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}|[0-9a-fA-F]{2}(-[0-9a-fA-F]{2}){5})$/;
/** A MAC address as it is stored, signed and enforced: lower case, colons. */
export const canonicalMac = (mac: string): string => mac.toLowerCase().replaceAll('-', ':');

/** The schema option that says, in words, what a parameter must be: the problem a client is told when it is not. */
export const MUST = 'x-must';

const flag = (description: string) => Type.Optional(Type.Boolean({ description, [MUST]: 'be true or false' }));
/** A path on the endpoint, as data: anything but NUL (the agent refuses what its platform does not take as absolute). */
const endpointPath = Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\u0000]+$' });
/** One line of a file, without its newline. */
const line = Type.Optional(Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\r\\n]+$', description: 'Remove only this line of the file (every line equal to it), not the whole file.', [MUST]: 'be the text of one line (1 to 4096 characters, no line break)' }));
/** Lifts the agent's guards of the system tier; only a Global Administrator may set it, and never automation. */
const overridable = { overrideGuard: flag('Lift the agent\'s system-tier guards (critical files, units, modules, root). Global Administrator only.') };

/**
 * The parameters each action type takes, by type: the server validates them
 * when an action is proposed, the console builds its forms from them, and
 * the agent checks them again in every signed command and hands them to the
 * executor typed. Lists are arrays and flags booleans; nothing is parsed
 * out of a string. A new action type does not compile until it has a row.
 */
const ORIGINAL_PARAMETERS = {
  isolate_device: {
    isolation: Type.Optional(Type.Union([Type.Literal('full'), Type.Literal('selective')], { description: 'Full by default: only Quell reaches the device. Selective also keeps `allow` reachable.', [MUST]: 'be full or selective' })),
    allow: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64, description: 'Selective isolation: IPv4 or IPv6 addresses or CIDR ranges that stay reachable.', [MUST]: 'be a list of at most 64 IP addresses or CIDR ranges' })),
  },
  release_isolation: {},
  contain_device: {
    mac: Type.Optional(Type.String({ pattern: MAC_ADDRESS.source, description: 'The device\'s MAC address, such as 52:54:00:12:34:56 (hyphens also accepted): its frames are dropped too.', [MUST]: 'be a MAC address such as 52:54:00:12:34:56 or 52-54-00-12-34-56' })),
  },
  release_containment: {},
  contain_user: { allowSystemAccount: flag('Contain a system account (uid below 1000) or nobody, which stops the services that run as it.'), ...overridable },
  release_user: {},
  restrict_code_execution: {},
  remove_code_restriction: {},
  quarantine_file: overridable,
  stop_and_quarantine_file: overridable,
  restore_file: {},
  remove_registry_key: overridable,
  restore_registry_key: {},
  stop_service: { mask: flag('Mask the unit instead of disabling it.'), removeUnitFile: flag('Move the unit file into the vault (a unit Quell found planted).'), ...overridable },
  restore_service: {},
  disable_driver: overridable,
  restore_driver: {},
  remove_scheduled_task: { line, ...overridable },
  restore_scheduled_task: {},
  remove_persistence: { line, ...overridable },
  restore_persistence: {},
  run_antivirus_scan: {
    scan: Type.Optional(Type.Union([Type.Literal('quick'), Type.Literal('full')], { description: 'Quick by default: the places malware usually lands.', [MUST]: 'be quick or full' })),
    roots: Type.Optional(Type.Array(endpointPath, { minItems: 1, maxItems: 64, description: 'Scan these folders instead (a custom scan).', [MUST]: 'be a list of 1 to 64 paths' })),
    blockSha256: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9a-fA-F]{64}$' }), { maxItems: 1000, description: 'Also treat files with these SHA-256 hashes as malicious.', [MUST]: 'be a list of at most 1000 SHA-256 hashes' })),
  },
  collect_investigation_package: {},
  collect_evidence: {
    paths: Type.Optional(Type.Array(endpointPath, { maxItems: EVIDENCE_MAX_PATHS, description: `Also hash and describe these files (at most ${EVIDENCE_MAX_PATHS}).`, [MUST]: `be a list of at most ${EVIDENCE_MAX_PATHS} paths` })),
  },
} as const satisfies Record<ActionType, TProperties>;

type OriginalsOf<T extends ActionType> = { [O in ActionType]: (typeof ACTION_CATALOGUE)[O]['undoType'] extends T ? O : never }[ActionType];
/** An undo carries its original's parameters as they were (its executor works from the original's snapshot), its guard override aside. */
type PropertiesOf<T extends ActionType> = (typeof ACTION_CATALOGUE)[T]['isUndo'] extends true
  ? WithoutOverride<(typeof ORIGINAL_PARAMETERS)[OriginalsOf<T>]>
  : (typeof ORIGINAL_PARAMETERS)[T];
type WithoutOverride<P> = { [K in Exclude<keyof P, 'overrideGuard'>]: P[K] };

function propertiesOf(type: ActionType): TProperties {
  if (!ACTION_CATALOGUE[type].isUndo) return ORIGINAL_PARAMETERS[type];
  const originals = ACTION_TYPES.filter((original) => ACTION_CATALOGUE[original].undoType === type);
  const merged: TProperties = Object.assign({}, ...originals.map((original) => ORIGINAL_PARAMETERS[original]));
  delete merged.overrideGuard;
  return merged;
}

/** The schema of each type's parameters: an object of its own properties and no others. */
export const ACTION_PARAMETER_SCHEMAS = Object.fromEntries(ACTION_TYPES.map((type) => [
  type, Type.Object(propertiesOf(type), { additionalProperties: false, maxProperties: 16 }),
])) as { [T in ActionType]: PropertiesOf<T> extends infer P extends TProperties ? TObject<P> : never };

/** The parameters of an action of type T (of any type by default); a type that takes none takes no property at all. */
export type ActionParameters<T extends ActionType = ActionType> = T extends ActionType
  ? keyof PropertiesOf<T> extends never ? Record<string, never> : Static<(typeof ACTION_PARAMETER_SCHEMAS)[T]>
  : never;

/** Lists the earlier string forms spelled out, separated as their readers split them. */
const LEGACY_LISTS: Record<string, RegExp> = { allow: /,/, roots: /[,\n]/, blockSha256: /[\s,]+/, paths: /\n/ };
const LEGACY_FLAGS = new Set(['allowSystemAccount', 'overrideGuard', 'mask', 'removeUnitFile']);

/**
 * Parameters written before they were typed (stored actions, commands an
 * older server signed): lists as comma- or newline-separated strings and
 * flags as "true" / "false". Returns them in today's form; anything else
 * is returned as it is, for the schema to judge.
 */
export function upgradeParameters(parameters: unknown): unknown {
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) return parameters;
  const upgraded: Record<string, unknown> = { ...parameters };
  for (const [name, value] of Object.entries(upgraded)) {
    if (typeof value !== 'string') continue;
    const separator = Object.hasOwn(LEGACY_LISTS, name) ? LEGACY_LISTS[name] : undefined;
    if (separator) upgraded[name] = value.split(separator).map((entry) => (name === 'paths' ? entry : entry.trim())).filter(Boolean);
    else if (LEGACY_FLAGS.has(name) && (value === 'true' || value === 'false')) upgraded[name] = value === 'true';
  }
  return upgraded;
}
