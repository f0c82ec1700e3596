import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import { MUST } from '@quell/contracts';
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';

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
    // TypeBox also reports each additional property as a `false` schema: the `additionalProperties` issue names them better.
    const issues = [...result.error].filter((issue) => issue.keyword !== 'boolean');
    const issue = issues[0];
    if (!issue) return result;
    return { error: [worded(schema, issue)] };
  };
}

/** The issue as the outermost schema on its path that says what it must be would put it, or as TypeBox put it. */
function worded(schema: Node, issue: Issue): Issue {
  const steps = issue.schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean);
  const instance = issue.instancePath.split('/').filter(Boolean);
  let node: Node | undefined = schema;
  let depth = 0;
  for (let i = 0; node; i++) {
    if (typeof node[MUST] === 'string') return { ...issue, instancePath: `/${instance.slice(0, depth).join('/')}`, message: `must ${node[MUST] as string}` };
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
    const names = (issue.params?.additionalProperties as string[] | undefined) ?? [];
    return { ...issue, message: `must not have ${names.length === 1 ? 'the property' : 'the properties'} ${names.map((n) => JSON.stringify(n.slice(0, 64))).join(', ')}` };
  }
  return issue;
}
