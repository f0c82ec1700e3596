import { ACTION_CATALOGUE, ACTION_TYPES, type ActionType } from './catalogue.ts';

/** Action ids become file names on endpoints (the vault, package folders): only a UUID is ever one. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The most files one evidence request may name (`collect_evidence`'s `paths`), and their length together: a command fits in one agent frame. */
export const EVIDENCE_MAX_PATHS = 100;
export const EVIDENCE_MAX_PATHS_CHARS = 128 * 1024;

export type ParameterRule = { kind: 'boolean' } | { kind: 'string'; maxLength: number; oneOf?: readonly string[] };
const flag: ParameterRule = { kind: 'boolean' };
const text = (maxLength: number, oneOf?: readonly string[]): ParameterRule => ({ kind: 'string', maxLength, ...(oneOf ? { oneOf } : {}) });
/** Lifts the agent's guards of the system tier; only a Global Administrator may set it. */
const overridable = { overrideGuard: flag };

/**
 * The parameters each action type may carry, with their types and sizes:
 * the server refuses anything else when an action is proposed, and the
 * agent refuses it again in a signed command. A new action type does not
 * compile until it has a row here.
 */
export const ACTION_PARAMETERS: Record<ActionType, Record<string, ParameterRule>> = {
  isolate_device: { isolation: text(16, ['full', 'selective']), allow: text(4096) },
  release_isolation: {},
  contain_device: { mac: text(64) },
  release_containment: {},
  contain_user: { allowSystemAccount: flag, ...overridable },
  release_user: {},
  restrict_code_execution: {},
  remove_code_restriction: {},
  quarantine_file: overridable,
  stop_and_quarantine_file: overridable,
  restore_file: {},
  remove_registry_key: overridable,
  restore_registry_key: {},
  stop_service: { mask: flag, removeUnitFile: flag, ...overridable },
  restore_service: {},
  disable_driver: overridable,
  restore_driver: {},
  remove_scheduled_task: { line: text(4096), ...overridable },
  restore_scheduled_task: {},
  remove_persistence: { line: text(4096), ...overridable },
  restore_persistence: {},
  run_antivirus_scan: { scan: text(8, ['quick', 'full']), roots: text(65_536), blockSha256: text(1_000_000) },
  collect_investigation_package: {},
  collect_evidence: { paths: text(EVIDENCE_MAX_PATHS_CHARS) },
};

/** An undo carries its original's parameters as they were (its executor works from the original's snapshot). */
function rulesFor(type: ActionType): Record<string, ParameterRule> {
  const originals = ACTION_TYPES.filter((original) => ACTION_CATALOGUE[original].undoType === type);
  return Object.assign({}, ACTION_PARAMETERS[type], ...originals.map((original) => ACTION_PARAMETERS[original]));
}

/** What is wrong with an action's parameters for its type, or null. */
export function parameterProblem(type: ActionType, parameters: unknown): string | null {
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) return 'parameters is not an object';
  const rules = rulesFor(type);
  for (const [name, value] of Object.entries(parameters)) {
    const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
    if (!rule) return `${type} takes no parameter ${JSON.stringify(name.slice(0, 64))}`;
    if (rule.kind === 'boolean' && value !== true && value !== false && value !== 'true' && value !== 'false') return `parameters.${name} must be true or false`;
    if (rule.kind === 'string') {
      if (typeof value !== 'string' || value.length > rule.maxLength) return `parameters.${name} must be a string of at most ${rule.maxLength} characters`;
      if (rule.oneOf && !rule.oneOf.includes(value)) return `parameters.${name} must be one of ${rule.oneOf.join(', ')}`;
    }
  }
  return null;
}
