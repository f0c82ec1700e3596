import { Value } from 'typebox/value';
import { addressOrRange } from './addresses.ts';
import { ACTION_TYPES, type ActionType } from './catalogue.ts';
import { ACTION_PARAMETER_SCHEMAS, type ActionParameters, EVIDENCE_MAX_PATHS_CHARS, MUST, canonicalMac } from './parameters.ts';

/**
 * What is wrong with `parameters` for an action of `type`, or null: the
 * type's schema first, then what a schema cannot say (allowed addresses are
 * addresses; evidence paths fit one command together). The server asks it
 * of every proposal, the agent of every signed command.
 */
export function parameterProblem(type: ActionType, parameters: unknown): string | null {
  if (!(ACTION_TYPES as readonly string[]).includes(type)) return `unknown action type ${JSON.stringify(String(type).slice(0, 64))}`;
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) return 'parameters is not an object';
  const schema = ACTION_PARAMETER_SCHEMAS[type];
  const unknown = Object.keys(parameters).find((name) => !Object.hasOwn(schema.properties, name));
  if (unknown !== undefined) {
    const takes = Object.keys(schema.properties);
    return `${type} takes no parameter ${JSON.stringify(unknown.slice(0, 64))}${takes.length ? ` (it takes ${takes.join(', ')})` : ''}`;
  }
  const error = Value.Errors(schema, parameters).find((e) => e.keyword !== 'boolean');
  if (error) {
    // Said of the parameter as a whole when its schema says what it must be; the schema's own words otherwise.
    const name = error.instancePath.split('/')[1] ?? '';
    const must = (schema.properties as Record<string, Record<string, unknown>>)[name]?.[MUST];
    return typeof must === 'string' ? `parameters.${name} must ${must}` : `parameters${error.instancePath.replaceAll('/', '.')}: ${error.message}`;
  }
  const { allow, paths } = parameters as ActionParameters<'isolate_device' | 'collect_evidence'> & { allow?: string[]; paths?: string[] };
  const notAddress = allow?.find((entry) => 'problem' in addressOrRange(entry));
  if (notAddress !== undefined) return `parameters.allow: ${(addressOrRange(notAddress) as { problem: string }).problem}`;
  if (paths && paths.reduce((sum, path) => sum + path.length + 1, 0) > EVIDENCE_MAX_PATHS_CHARS) return `parameters.paths: more than ${EVIDENCE_MAX_PATHS_CHARS} characters together`;
  return null;
}

/** Checked parameters in the one form they are stored, signed and enforced in: MAC addresses and allowed addresses as `canonicalMac` and `addressOrRange` spell them. */
export function canonicalParameters<P extends object>(parameters: P): P {
  const { mac, allow } = parameters as { mac?: string; allow?: string[] };
  return {
    ...parameters,
    ...(mac !== undefined ? { mac: canonicalMac(mac) } : {}),
    ...(allow !== undefined ? { allow: allow.map((entry) => { const address = addressOrRange(entry); return 'value' in address ? address.value : entry; }) } : {}),
  };
}
