import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

/** A value that matched its schema, or what is wrong with it in one line. */
export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

type Validator = { Check(value: unknown): boolean; Errors(value: unknown): Array<{ instancePath: string; message: string }> };
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
  const first = validator.Errors(value)[0];
  const where = first?.instancePath ? first.instancePath : 'the value';
  return { ok: false, problem: `${where} ${first?.message ?? 'does not match its schema'}`.slice(0, 300) };
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
