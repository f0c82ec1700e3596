import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import { firstIssue } from '@quell/contracts/checks';
import { Ajv } from 'ajv';
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';
import Format from 'typebox/format';

type Issue = FastifySchemaValidationError;
type Validator = (value: unknown) => { value?: unknown; error?: Issue[] };
type Node = Record<string, unknown>;

/**
 * TypeBox's validation, with one clear problem per request instead of a
 * list: a body that is one of several shapes told apart by a property
 * (OpenAPI's `discriminator`, like POST /api/actions by `type`) is checked
 * against its own shape only, and a property whose schema says in words
 * what it must be (MUST) is refused in those words.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => {
  const schema = route.schema as Node;
  if (route.httpPart !== 'body') return inWords(textValidator(route.schema), schema);
  const tag = (schema.discriminator as { propertyName?: string } | undefined)?.propertyName;
  if (tag === undefined || !Array.isArray(schema.anyOf)) return inWords(TypeBoxValidatorCompiler(route) as Validator, schema);
  const shapes = new Map<string, Validator>();
  for (const shape of schema.anyOf as Node[]) {
    const value = ((shape.properties as Node)[tag] as Node).const as string;
    shapes.set(value, inWords(TypeBoxValidatorCompiler({ ...route, schema: shape as TSchema }) as Validator, shape));
  }
  return (value) => {
    const key = typeof value === 'object' && value !== null ? (value as Node)[tag] : undefined;
    const shape = typeof key === 'string' ? shapes.get(key) : undefined;
    if (shape) return shape(value);
    const message = `must be one of ${[...shapes.keys()].join(', ')}`;
    return { error: [{ instancePath: `/${tag}`, schemaPath: `#/discriminator`, keyword: 'discriminator', message, params: {} }] };
  };
};

function inWords(validate: Validator, schema: Node): Validator {
  return (value) => {
    const result = validate(value);
    if (!result.error) return result;
    const issue = firstIssue(schema as TSchema, result.error);
    return issue ? { error: [issue] } : result;
  };
}

let ajv: Ajv | undefined;

/**
 * A query string's, path's or headers' validator: they arrive as text, and
 * Ajv turns numbers and flags into what the schema says in the check itself
 * (as Fastify does), many times faster than converting first. Formats are
 * TypeBox's, so that text and bodies are held to the same rules.
 */
function textValidator(schema: TSchema): Validator {
  ajv ??= new Ajv({
    coerceTypes: 'array', useDefaults: true, allErrors: false, strict: false,
    formats: Object.fromEntries(Format.Entries().map(([name]) => [name, (value: string) => Format.Test(name, value)])),
  });
  const validate = ajv.compile(schema);
  return (value) => (validate(value) ? { value } : { error: validate.errors as Issue[] });
}

