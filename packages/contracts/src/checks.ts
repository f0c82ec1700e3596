import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { MUST } from './parameters.ts';

/** A value that matched its schema, or what is wrong with it in one line. */
export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

/** A place where a value departs from its schema, as the validator reports it. */
export interface Issue { instancePath: string; schemaPath: string; keyword: string; message?: string; params?: Record<string, unknown> }
type Validator = { Check(value: unknown): boolean; Errors(value: unknown): Issue[] };
// Compiled on first use, not when the module loads. This module is its own entry point (@quell/contracts/checks):
// the validator compiler is for those who read what others wrote (server, agent), not for the console's bundle.
const validators = new WeakMap<TSchema, Validator>();
function validatorOf(schema: TSchema): Validator {
  let validator = validators.get(schema);
  if (!validator) {
    validator = Compile(schema) as unknown as Validator;
    validators.set(schema, validator);
  }
  return validator;
}

/** Checks a value against a schema; the problem names the first place it departs from it. */
export function checkValue<T extends TSchema>(schema: T, value: unknown): Checked<Static<T>> {
  const validator = validatorOf(schema);
  if (validator.Check(value)) return { ok: true, value: value as Static<T> };
  const first = firstIssue(schema, validator.Errors(value));
  const where = first?.instancePath ? first.instancePath : 'the value';
  return { ok: false, problem: `${where} ${first?.message ?? 'does not match its schema'}`.slice(0, 300) };
}

/** The issue to tell of a value: the first, in words where its schema has them. */
export function firstIssue<I extends Issue>(schema: TSchema, issues: Iterable<I>): I | undefined {
  // A property a closed object does not allow is also reported as a `false` schema: the additionalProperties issue names it better.
  for (const issue of issues) if (issue.keyword !== 'boolean') return worded(schema, issue);
  return undefined;
}

type Node = Record<string, unknown>;

/** The issue as the outermost schema on its path that says in words what it must be (MUST) would put it; as the validator put it otherwise. */
function worded<I extends Issue>(schema: TSchema, issue: I): I {
  const steps = issue.schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean);
  const instance = issue.instancePath.split('/').filter(Boolean);
  let node: Node | undefined = schema as Node;
  let depth = 0;
  for (let i = 0; node; i++) {
    if (typeof node[MUST] === 'string') return { ...issue, instancePath: instance.slice(0, depth).map((part) => `/${part}`).join(''), message: `must ${node[MUST] as string}` };
    if (i >= steps.length) break;
    const step = steps[i]!;
    if (step === 'properties' && i + 1 < steps.length) {
      node = (node.properties as Node | undefined)?.[steps[++i]!] as Node | undefined;
      depth++;
    } else if (step === 'items') {
      node = node.items as Node | undefined;
      depth++;
    } else if ((step === 'anyOf' || step === 'allOf' || step === 'oneOf') && i + 1 < steps.length) {
      node = (node[step] as Node[] | undefined)?.[Number(steps[++i])];
    } else {
      break;
    }
  }
  if (issue.keyword === 'additionalProperties') {
    // TypeBox lists them all; Ajv (query strings) names the first.
    const { additionalProperties, additionalProperty } = (issue.params ?? {}) as { additionalProperties?: string[]; additionalProperty?: string };
    const names = additionalProperties ?? (additionalProperty === undefined ? [] : [additionalProperty]);
    return { ...issue, message: `must not have ${names.length === 1 ? 'the property' : 'the properties'} ${names.map((n) => JSON.stringify(n.slice(0, 64))).join(', ')}` };
  }
  return issue;
}

/**
 * Parses JSON text that someone else wrote (an agent's report) against a
 * schema, refusing text longer than `maxChars` before parsing it: the cost
 * of a hostile answer is bounded by its size, which is bounded first.
 */
export function parseJsonAs<T extends TSchema>(schema: T, text: string, maxChars: number): Checked<Static<T>> {
  if (text.length > maxChars) return { ok: false, problem: `it is ${text.length} characters long, more than the ${maxChars} allowed` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `it is not JSON (${(error as Error).message.slice(0, 120)})` };
  }
  return checkValue(schema, value);
}
