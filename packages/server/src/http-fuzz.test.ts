/**
 * Property-based test of the promise in DESIGN.md §4: bad input gets a clear
 * 4xx problem, never a 5xx, never a partial write.
 *
 * Every route in the OpenAPI document is covered, so a new route is tested the
 * day it is added, in two ways:
 *
 * - generated requests (fast-check): bodies shaped like the route's schema with
 *   at most one defect (wrong type, value past a bound, missing or unknown
 *   field), arbitrary JSON, broken JSON, wrong content types, oversized bodies,
 *   generated query strings and path ids (random strings, random UUIDs, real
 *   ids of every kind and state), from every role, scoped and narrowed tokens,
 *   cookie sessions with and without the CSRF header, and nobody;
 * - a sweep of every field with every awkward value its schema accepts.
 *
 * Each answer must be a 2xx, or a 4xx problem whose `code` is in the catalogue
 * with that status and whose `detail` says something; after a 4xx every table
 * must be as it was, and the audit log may only have gained failed sign-ins.
 * Table-driven cases pin down the all-or-nothing bulk calls.
 */
import { createHash } from 'node:crypto';
import { API_PATHS, ERRORS, type ErrorCode, PERMISSIONS, ROLES, type Role } from '@quell/contracts';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from './actor.ts';
import type { Db } from './db/store.ts';
import { PASSWORD, TEST_DIALECT, type TestContext, createUser, setupTestApp, useTestApp } from './test/helper.ts';

/** Generated requests per route; with ~35 routes the whole file takes about 20 s on SQLite. */
const RUNS_PER_ROUTE = 40;

// ---------------------------------------------------------------------------
// The routes, read from the OpenAPI document
// ---------------------------------------------------------------------------

/** The part of JSON Schema that TypeBox emits for our contracts. */
interface JsonSchema {
  type?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  /** Records (e.g. action parameters): the OpenAPI document carries their value schema here. */
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
}

interface Parameter { name: string; in: string; required?: boolean; schema: JsonSchema }
interface Operation { parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }
interface OpenApiDocument { paths: Record<string, Record<string, Operation>> }

interface RouteUnderTest {
  method: string;
  /** OpenAPI form, e.g. `/api/actions/{id}`. */
  path: string;
  params: Parameter[];
  query: Parameter[];
  body: JsonSchema | null;
}

/** Read once while the file is collected, so that every route gets a test of its own. */
async function documentedRoutes(): Promise<RouteUnderTest[]> {
  const probe = await setupTestApp();
  try {
    await probe.app.ready();
    const document = probe.app.swagger() as unknown as OpenApiDocument;
    return Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.entries(operations).map(([method, operation]) => ({
        method: method.toUpperCase(),
        path,
        params: (operation.parameters ?? []).filter((p) => p.in === 'path'),
        query: (operation.parameters ?? []).filter((p) => p.in === 'query'),
        body: operation.requestBody?.content['application/json']?.schema ?? null,
      })));
  } finally {
    await probe.close();
  }
}

const ROUTES = await documentedRoutes();

// ---------------------------------------------------------------------------
// What a rejected request must not touch
// ---------------------------------------------------------------------------

/**
 * Every table is guarded, so a table added later is too, except two: the
 * audit log, where a failed sign-in is recorded by design (checked
 * separately), and the migration ledger, which no request touches.
 */
const UNGUARDED_TABLES = new Set(['audit_log', 'schema_migrations']);

/** Tables a rejected request must leave exactly as they were (the ones every deployment has). */
const MUST_GUARD = ['actions', 'action_events', 'users', 'api_tokens', 'device_groups', 'user_device_groups', 'devices', 'settings', 'sessions'];

/** The settings row that mirrors the audit chain's head; it moves with every audit entry. */
const AUDIT_HEAD_SETTING = 'audit_head';

let guardedTables: string[] | undefined;
async function tablesToGuard(db: Db): Promise<string[]> {
  guardedTables ??= (await db.introspection.getTables()).map((table) => table.name).filter((name) => !UNGUARDED_TABLES.has(name)).sort();
  return guardedTables;
}

/** Row count and a hash of every row (in a fixed order), per guarded table. */
async function snapshot(db: Db): Promise<Record<string, string>> {
  return TEST_DIALECT === 'postgres' ? snapshotInPostgres(db) : snapshotInNode(db);
}

async function snapshotInNode(db: Db): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of await tablesToGuard(db)) {
    const { rows } = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)}`.execute(db);
    const kept = table === 'settings' ? rows.filter((row) => row.key !== AUDIT_HEAD_SETTING) : rows;
    const lines = kept.map((row) => JSON.stringify(row)).sort();
    out[table] = `${lines.length} rows, sha256 ${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
  }
  return out;
}

/** The same in one statement that PostgreSQL computes itself: a network round trip per table made this suite twice as slow there. */
async function snapshotInPostgres(db: Db): Promise<Record<string, string>> {
  const perTable = (await tablesToGuard(db)).map((table) => {
    const skip = table === 'settings' ? sql`WHERE r.key <> ${AUDIT_HEAD_SETTING}` : sql``;
    return sql`SELECT ${table} AS name, count(*) AS n, md5(coalesce(string_agg(r::text, E'\n' ORDER BY r::text), '')) AS digest FROM ${sql.table(table)} r ${skip}`;
  });
  const { rows } = await sql<{ name: string; n: string; digest: string }>`${sql.join(perTable, sql` UNION ALL `)}`.execute(db);
  return Object.fromEntries(rows.map((row) => [row.name, `${row.n} rows, md5 ${row.digest}`]));
}

async function auditHead(db: Db): Promise<number> {
  const row = await db.selectFrom('audit_log').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
  return row?.seq ?? 0;
}

async function auditKindsSince(db: Db, seq: number): Promise<string[]> {
  return (await db.selectFrom('audit_log').select('kind').where('seq', '>', seq).orderBy('seq').execute()).map((r) => r.kind);
}

// ---------------------------------------------------------------------------
// Who calls
// ---------------------------------------------------------------------------

type Caller =
  | { kind: 'anonymous' }
  | { kind: 'bearer'; who: Role | 'scoped_reader' | 'narrow_token' | 'revoked_token' }
  | { kind: 'session'; csrf: 'right' | 'missing' | 'wrong' }
  | { kind: 'authorization'; header: string }
  | { kind: 'cookie'; value: string };

/** What the seed created and the fuzzing must keep working: the callers' credentials and the ids a request may name. */
interface FuzzState {
  bearer: Record<Role | 'scoped_reader' | 'narrow_token' | 'revoked_token', string>;
  session: { cookie: string; csrfToken: string };
  signIn(): Promise<void>;
  /** Users and tokens that generated PATCH and DELETE calls may change; the callers' own never appear. */
  victimUserIds: string[];
  victimTokenIds: string[];
  deviceIds: string[];
}

function headersFor(caller: Caller, state: FuzzState): Record<string, string> {
  switch (caller.kind) {
    case 'anonymous':
      return {};
    case 'bearer':
      return { authorization: `Bearer ${state.bearer[caller.who]}` };
    case 'session':
      return {
        cookie: `quell_session=${state.session.cookie}`,
        ...(caller.csrf === 'right' ? { 'x-csrf-token': state.session.csrfToken } : caller.csrf === 'wrong' ? { 'x-csrf-token': 'not-the-token' } : {}),
      };
    case 'authorization':
      return { authorization: caller.header };
    case 'cookie':
      return { cookie: `quell_session=${caller.value}` };
  }
}

const headerText = fc.oneof(
  fc.stringMatching(/^[\x20-\x7e]{0,60}$/),
  fc.constantFrom('%', '%zz', '%E0%A4%A', 'qt_', 'Bearer', 'Bearer ', 'Bearer qt_00000000-0000-0000-0000-000000000000_x', 'Basic YWRtaW46YWRtaW4='),
);

/** Weighted towards callers who may do everything, so that most requests get past permissions to the rules and the database. */
const callerArb: fc.Arbitrary<Caller> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Caller>({ kind: 'bearer', who: 'global_admin' }) },
  { weight: 6, arbitrary: fc.constantFrom('security_reader', 'security_operator', 'security_admin').map((who): Caller => ({ kind: 'bearer', who })) },
  { weight: 3, arbitrary: fc.constantFrom('scoped_reader', 'narrow_token', 'revoked_token').map((who): Caller => ({ kind: 'bearer', who })) },
  { weight: 2, arbitrary: fc.constant<Caller>({ kind: 'anonymous' }) },
  { weight: 2, arbitrary: fc.constantFrom('right', 'missing', 'wrong').map((csrf): Caller => ({ kind: 'session', csrf })) },
  { weight: 1, arbitrary: headerText.map((header): Caller => ({ kind: 'authorization', header })) },
  { weight: 1, arbitrary: headerText.map((value): Caller => ({ kind: 'cookie', value })) },
);

// ---------------------------------------------------------------------------
// Ids a request may name
// ---------------------------------------------------------------------------

interface IdPools {
  /** A few actions of every status, so bulk bodies mix pending, decided, completed and undone ones. */
  actions: string[];
  devices: string[];
  groups: string[];
  users: string[];
  tokens: string[];
  all: string[];
}

async function readPools(t: TestContext, state: FuzzState): Promise<IdPools> {
  const db = t.store.db;
  const byStatus = new Map<string, string[]>();
  for (const { id, status } of await db.selectFrom('actions').select(['id', 'status']).orderBy('id', 'desc').execute()) {
    const list = byStatus.get(status) ?? [];
    if (list.length < 4) byStatus.set(status, [...list, id]);
  }
  const actions = [...byStatus.values()].flat();
  const devices = (await db.selectFrom('devices').select('id').execute()).map((r) => r.id);
  const groups = (await db.selectFrom('device_groups').select('id').execute()).map((r) => r.id);
  const users = state.victimUserIds;
  const tokens = state.victimTokenIds;
  return { actions, devices, groups, users, tokens, all: [...actions, ...devices, ...groups, ...users, ...tokens] };
}

/** Which pool a field or path segment most likely names. */
function poolFor(pools: IdPools, hint: string): string[] {
  const byHint: Record<string, string[]> = {
    ids: pools.actions, deviceId: pools.devices, groupId: pools.groups, deviceGroupIds: pools.groups,
    actions: pools.actions, devices: pools.devices, users: pools.users, tokens: pools.tokens,
  };
  const pool = byHint[hint];
  return pool && pool.length > 0 ? pool : pools.all;
}

/** Ids the uuid format accepts: real ones of the right kind most often, then any real id, then unknown ones. */
function idArb(pools: IdPools, hint: string): fc.Arbitrary<string> {
  const anyReal = pools.all[0] ?? '00000000-0000-7000-8000-000000000000';
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...poolFor(pools, hint)) },
    { weight: 1, arbitrary: fc.constantFrom(...pools.all) },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.constantFrom(anyReal.toUpperCase(), '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff') },
  );
}

// ---------------------------------------------------------------------------
// Values: valid for the schema (often at an edge), then at most one thing wrong
// ---------------------------------------------------------------------------

const USERNAMES = ['admin', ...ROLES.map((role) => role.replace('_', '-')), 'victim-admin'];

/** Date-times RFC 3339 allows that are easy to get wrong: leap seconds, year 0, lower-case or space separators. */
const ODD_DATE_TIMES = [
  '2026-10-31T23:59:60Z', '2026-11-01T11:59:60-12:00', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z',
  '2026-11-01t12:00:00z', '2026-11-01 12:00:00Z', '2026-11-01T12:00:00+14:00', '2026-11-01T12:00:00.123456789Z',
];

const dateTimeArb = fc.oneof(
  { weight: 3, arbitrary: fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()) },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_DATE_TIMES) },
);

const encodeCursor = (value: unknown): string => Buffer.from(JSON.stringify(value) ?? '').toString('base64url');

/** Cursors shaped like ours but carrying what no server issues, and junk. */
const AWKWARD_CURSORS = [
  encodeCursor(['requested_at', 'desc', 1e300, '00000000-0000-0000-0000-000000000000']),
  encodeCursor(['requested_at', 'desc', 0.5, '00000000-0000-0000-0000-000000000000']),
  encodeCursor(['requested_at', 'desc', 2 ** 63, '00000000-0000-0000-0000-000000000000']),
  encodeCursor(['requested_at', 'desc', 1, 'nul\u0000id']),
  encodeCursor(['updated_at', 'asc', 1, 'x']),
  encodeCursor({ not: 'a cursor' }),
  '', 'garbage', '%%%',
];

/** Cursors: well-formed ones with times and ids no server issued, and junk. */
const cursorArb = fc.oneof(
  fc.tuple(
    fc.constantFrom('requested_at', 'updated_at', 'id'),
    fc.constantFrom('asc', 'desc'),
    fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(1e300, -1e300, 0.5, 2 ** 63)),
    fc.oneof(fc.uuid(), fc.string(), fc.constant('nul\u0000id')),
  ).map(encodeCursor),
  fc.jsonValue({ maxDepth: 2 }).map(encodeCursor),
  fc.constantFrom(...AWKWARD_CURSORS),
  fc.string({ maxLength: 40 }),
);

const EDGE_STRINGS = [
  ' ', 'nul\u0000byte', 'lone \ud800 surrogate', 'Ünïcödé 🦀 ﬀ', "'; DROP TABLE actions; --", '../../etc/passwd', '%00%zz', '<script>alert(1)</script>', '\r\n\t', 'Robert\u0000); --',
];

function validString(schema: JsonSchema, pools: IdPools, hint: string): fc.Arbitrary<string> {
  if (schema.format === 'uuid') return idArb(pools, hint);
  if (schema.format === 'date-time') return dateTimeArb;
  const minLength = schema.minLength ?? 0;
  const maxLength = schema.maxLength ?? 256;
  const pattern = schema.pattern ? new RegExp(schema.pattern) : null;
  const fits = (text: string): boolean => text.length >= minLength && text.length <= maxLength && (pattern === null || pattern.test(text));
  const base = pattern ? fc.stringMatching(pattern) : fc.string({ unit: 'grapheme', minLength, maxLength: Math.min(maxLength, 40) });
  const edges = [...EDGE_STRINGS, 'x'.repeat(Math.max(minLength, 1)), 'x'.repeat(maxLength)].filter(fits);
  const named = (hint === 'username' ? USERNAMES : hint === 'password' ? [PASSWORD, 'wrong password!'] : []).filter(fits);
  return fc.oneof(
    { weight: 4, arbitrary: base },
    ...(edges.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...edges) }] : []),
    ...(named.length > 0 ? [{ weight: 3, arbitrary: fc.constantFrom(...named) }] : []),
    ...(hint === 'cursor' ? [{ weight: 6, arbitrary: cursorArb }] : []),
  );
}

function validNumber(schema: JsonSchema): fc.Arbitrary<number> {
  const integer = schema.type === 'integer';
  const { minimum, maximum } = schema;
  const inRange = (n: number): boolean => (minimum === undefined || n >= minimum) && (maximum === undefined || n <= maximum) && (!integer || Number.isInteger(n));
  const min = Math.max(minimum ?? -1_000_000, -(2 ** 31));
  const max = Math.min(maximum ?? 1_000_000, 2 ** 31);
  const edges = [minimum, maximum, 0, -1, 1, 0.5, 2 ** 31, 2 ** 53 + 2, 2 ** 63, 1e300, -1e300].filter((n): n is number => n !== undefined && inRange(n));
  return fc.oneof(
    { weight: 3, arbitrary: integer ? fc.integer({ min, max }) : fc.double({ min, max, noNaN: true }) },
    ...(edges.length > 0 ? [{ weight: 2, arbitrary: fc.constantFrom(...edges) }] : []),
  );
}

function validArray(schema: JsonSchema, pools: IdPools, hint: string): fc.Arbitrary<unknown[]> {
  const item = valid(schema.items ?? {}, pools, hint);
  const minLength = schema.minItems ?? 0;
  const maxItems = schema.maxItems ?? 10;
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(item, { minLength, maxLength: Math.min(maxItems, Math.max(minLength, 5)) }) },
    { weight: 1, arbitrary: fc.array(item, { minLength: maxItems, maxLength: maxItems }) },
  );
}

/** The value schema of a record (an object with free keys), if `schema` is one. */
const recordValueSchema = (schema: JsonSchema): JsonSchema | null =>
  typeof schema.additionalProperties === 'object' ? schema.additionalProperties : null;

const RECORD_KEY = /^[a-zA-Z][a-zA-Z0-9_]{0,15}$/;

function validObject(schema: JsonSchema, pools: IdPools): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const valueSchema = recordValueSchema(schema);
  if (Object.keys(properties).length === 0 && valueSchema) {
    const key = fc.oneof({ weight: 3, arbitrary: fc.stringMatching(RECORD_KEY) }, { weight: 1, arbitrary: fc.string() });
    return fc.dictionary(key, valid(valueSchema, pools, ''), { maxKeys: Math.min(schema.maxProperties ?? 8, 8) });
  }
  const model = Object.fromEntries(Object.entries(properties).map(([name, property]) => [name, valid(property, pools, name)]));
  return fc.record(model, { requiredKeys: schema.required ?? [] });
}

/** A value that satisfies `schema`, often at one of its edges or carrying text a database may choke on. */
function valid(schema: JsonSchema, pools: IdPools, hint: string): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map((s) => valid(s, pools, hint)));
  switch (schema.type) {
    case 'string': return validString(schema, pools, hint);
    case 'integer':
    case 'number': return validNumber(schema);
    case 'boolean': return fc.boolean();
    case 'null': return fc.constant(null);
    case 'array': return validArray(schema, pools, hint);
    case 'object': return validObject(schema, pools);
    default: return fc.jsonValue({ maxDepth: 2 });
  }
}

const wrongTypeArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(null, [], {}, 0, -1, 1e300, true, '', 'x'.repeat(5000), { $ne: null }, [null]),
);

/** Values just outside `schema`: one past a bound, a near-miss format, a wrong type. */
function invalidFor(schema: JsonSchema): fc.Arbitrary<unknown> {
  const near: unknown[] = [];
  if (schema.enum) near.push('bogus', String(schema.enum[0]).toUpperCase(), ` ${String(schema.enum[0])}`);
  if (schema.maxLength !== undefined) near.push('x'.repeat(schema.maxLength + 1));
  if (schema.minLength !== undefined && schema.minLength > 0) near.push('x'.repeat(schema.minLength - 1));
  if (schema.pattern) near.push('!not matching!', '');
  if (schema.format === 'uuid') near.push('not-a-uuid', '', '0000000000000000000000000000000', `{${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}}`);
  if (schema.format === 'date-time') near.push('yesterday', '2026-02-30T00:00:00Z', '2026-11-01', '1e3', '2026-11-01T25:00:00Z');
  if (schema.minimum !== undefined) near.push(schema.minimum - 1);
  if (schema.maximum !== undefined) near.push(schema.maximum + 1);
  if (schema.type === 'integer') near.push(0.5, '1');
  if (schema.maxItems !== undefined) near.push(Array.from({ length: schema.maxItems + 1 }, () => '00000000-0000-0000-0000-000000000000'));
  if (schema.minItems !== undefined && schema.minItems > 0) near.push([]);
  return near.length > 0 ? fc.oneof({ weight: 2, arbitrary: fc.constantFrom(...near) }, { weight: 1, arbitrary: wrongTypeArb }) : wrongTypeArb;
}

type Mutation =
  | { kind: 'none' }
  | { kind: 'wrong_value'; field: string; value: unknown }
  | { kind: 'drop_required'; field: string }
  | { kind: 'unknown_fields'; extra: Record<string, unknown> };

/** Mostly one defect; about a third of the time none, so that the rules behind the schema get their turn. */
function mutationArb(schema: JsonSchema): fc.Arbitrary<Mutation> {
  const properties = schema.properties ?? {};
  const fields = Object.keys(properties);
  const required = schema.required ?? [];
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant<Mutation>({ kind: 'none' }) },
    ...(fields.length > 0 ? [{ weight: 4, arbitrary: fc.constantFrom(...fields).chain((field) => invalidFor(properties[field]!).map((value): Mutation => ({ kind: 'wrong_value', field, value }))) }] : []),
    ...(required.length > 0 ? [{ weight: 1, arbitrary: fc.constantFrom(...required).map((field): Mutation => ({ kind: 'drop_required', field })) }] : []),
    { weight: 1, arbitrary: fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }), { minKeys: 1, maxKeys: 3 }).map((extra): Mutation => ({ kind: 'unknown_fields', extra })) },
  );
}

function mutate(value: unknown, mutation: Mutation): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const copy: Record<string, unknown> = { ...value };
  switch (mutation.kind) {
    case 'none':
      return copy;
    case 'wrong_value':
      copy[mutation.field] = mutation.value;
      return copy;
    case 'drop_required':
      delete copy[mutation.field];
      return copy;
    case 'unknown_fields':
      // defineProperty, so that a generated `__proto__` becomes a real key of the JSON text.
      for (const [key, extra] of Object.entries(mutation.extra)) Object.defineProperty(copy, key, { value: extra, enumerable: true, writable: true, configurable: true });
      return copy;
  }
}

/** A schema-valid object with at most one defect. */
function shapedArb(schema: JsonSchema, pools: IdPools): fc.Arbitrary<unknown> {
  return fc.tuple(valid(schema, pools, ''), mutationArb(schema)).map(([value, mutation]) => mutate(value, mutation));
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

interface FuzzBody { contentType: string | null; payload: string | null }

const NO_BODY: FuzzBody = { contentType: null, payload: null };
const json = (value: unknown): FuzzBody => ({ contentType: 'application/json', payload: JSON.stringify(value) ?? 'null' });

/** JSON text that JSON.stringify never produces. */
const RAW_LITERALS = [
  '1e400', '-1e400', '1e-400', '9007199254740993', '123456789012345678901234567890', '"\\u0000"', '"\\ud800"', 'NaN', 'Infinity', 'undefined',
  '{"__proto__":{"isAdmin":true}}', '{"constructor":{"prototype":{"isAdmin":true}}}', `${'['.repeat(120_000)}${']'.repeat(120_000)}`, `${'{"a":'.repeat(40_000)}"\\u0000"${'}'.repeat(40_000)}`, '"unterminated', '[1,]', '01',
];

const WRONG_CONTENT_TYPES = [
  'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x',
  'application/json; charset=utf-16', 'application/jsonx', 'application/problem+json', 'application/vnd.api+json', '*/*', 'image/png',
];

function bodyArb(route: RouteUnderTest, pools: IdPools): fc.Arbitrary<FuzzBody> {
  const schema = route.body;
  const fields = Object.keys(schema?.properties ?? {});
  const field = fc.constantFrom(...(fields.length > 0 ? fields : ['comment']));
  const shaped = schema ? shapedArb(schema, pools) : fc.jsonValue({ maxDepth: 2 });
  return fc.oneof(
    { weight: schema ? 8 : 1, arbitrary: shaped.map(json) },
    { weight: 2, arbitrary: fc.jsonValue().map(json) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }).map((payload): FuzzBody => ({ contentType: 'application/json', payload })) },
    { weight: 1, arbitrary: fc.tuple(field, fc.constantFrom(...RAW_LITERALS)).map(([name, literal]): FuzzBody => ({ contentType: 'application/json', payload: `{"${name}":${literal}}` })) },
    { weight: 1, arbitrary: fc.tuple(shaped, fc.constantFrom(...WRONG_CONTENT_TYPES, null)).map(([value, contentType]): FuzzBody => ({ contentType, payload: JSON.stringify(value) ?? 'null' })) },
    { weight: 1, arbitrary: field.map((name): FuzzBody => ({ contentType: 'application/json', payload: `{"${name}":"${'x'.repeat(300 * 1024)}"}` })) },
    { weight: schema ? 1 : 4, arbitrary: fc.constantFrom<FuzzBody>(NO_BODY, { contentType: 'application/json', payload: '' }, { contentType: 'application/json', payload: null }) },
  );
}

const RAW_QUERIES = ['?', '?%', '?a=%zz', '?view=%E0%A4%A', '?view[]=pending', '?view=pending&view=history', '?view[x]=1', `?view=${'x'.repeat(5000)}`, '?&&&=&'];

function toQueryValue(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : (JSON.stringify(value) ?? '');
}

/** The query parameters as one object schema, generated like a body: valid, then at most one defect. */
function queryArb(route: RouteUnderTest, pools: IdPools): fc.Arbitrary<string> {
  const serialised = shapedArb(objectOf(route.query), pools).map((query) => queryString(query as Record<string, unknown>));
  return fc.oneof({ weight: 9, arbitrary: serialised }, { weight: 1, arbitrary: fc.constantFrom(...RAW_QUERIES) });
}

function pathArb(route: RouteUnderTest, pools: IdPools): fc.Arbitrary<string> {
  if (!route.path.includes('{')) return fc.constant(route.path);
  const hint = route.path.split('/')[2] ?? '';
  const segment = fc.oneof(
    { weight: 7, arbitrary: idArb(pools, hint).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%00', '..', '%2e%2e', 'a%2Fb', '%E0%A4%A', 'not-a-uuid', 'x'.repeat(3000)) },
  );
  return segment.map((id) => route.path.replace(/\{[^}]+\}/g, id));
}

interface FuzzRequest {
  caller: Caller;
  method: string;
  url: string;
  body: FuzzBody;
  remoteAddress: string;
}

const clip = (text: string, max = 300): string => (text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text);
const describeRequest = (r: FuzzRequest): string =>
  `${r.method} ${clip(r.url, 200)} as ${JSON.stringify(r.caller)} from ${r.remoteAddress}, content-type ${r.body.contentType ?? '(none)'}, body ${r.body.payload === null ? '(none)' : clip(r.body.payload)}`;

function requestArb(route: RouteUnderTest, pools: IdPools): fc.Arbitrary<FuzzRequest> {
  return fc.record({
    caller: callerArb,
    // Now and then a method the path does not have.
    method: fc.oneof({ weight: 19, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom('PUT', 'OPTIONS') }),
    path: pathArb(route, pools),
    query: queryArb(route, pools),
    body: bodyArb(route, pools),
    // Spread over addresses so the per-address sign-in limit does not answer every login attempt.
    remoteAddress: fc.ipV4(),
  }).map(({ path, query, ...rest }) => {
    const request: FuzzRequest = { ...rest, url: `${path}${query}` };
    return Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) });
  });
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

function expectProblem(res: LightMyRequestResponse, where: string): void {
  expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(Object.keys(ERRORS), where).toContain(body.code);
  expect(ERRORS[body.code as ErrorCode].status, where).toBe(res.statusCode);
  expect(body.status, where).toBe(res.statusCode);
  expect(typeof body.detail === 'string' && body.detail.trim().length > 0, `${where}: detail must be a non-empty string`).toBe(true);
}

/**
 * The store as the last rejected request left it: the next request starts from
 * it unless something was written since (a 2xx, a top-up), which saves one full
 * read of every table per request. A stale copy could only show a difference
 * that is not there, never hide one.
 */
let unchangedStore: Record<string, string> | null = null;

async function sendAndCheck(t: TestContext, state: FuzzState, request: FuzzRequest): Promise<void> {
  const db = t.store.db;
  const before = unchangedStore ?? await snapshot(db);
  unchangedStore = null;
  const seq = await auditHead(db);
  const res = await t.app.inject({
    method: request.method,
    url: request.url,
    headers: { ...headersFor(request.caller, state), ...(request.body.contentType !== null ? { 'content-type': request.body.contentType } : {}) },
    ...(request.body.payload !== null ? { payload: request.body.payload } : {}),
    remoteAddress: request.remoteAddress,
  });
  const where = `${describeRequest(request)} → ${res.statusCode} ${clip(res.body)}`;
  expect(res.statusCode, where).toBeLessThan(500);
  expect([2, 4], where).toContain(Math.floor(res.statusCode / 100));
  if (res.statusCode >= 400) {
    expectProblem(res, where);
    const after = await snapshot(db);
    expect(after, `${where}: a rejected request changed the store`).toEqual(before);
    expect((await auditKindsSince(db, seq)).filter((kind) => kind !== 'auth.login_failed'), `${where}: a rejected request wrote to the audit log`).toEqual([]);
    unchangedStore = after;
  } else if (request.url.startsWith(API_PATHS.logout)) {
    await state.signIn();
  }
}

// ---------------------------------------------------------------------------
// Awkward values, one field at a time
// ---------------------------------------------------------------------------

/*
 * Random search rarely lines up "everything valid except one awkward value
 * in one field, sent by someone allowed to". The sweep does so on purpose:
 * for every leaf field of every route (path, query and body) and every value
 * its schema accepts that is easy to mishandle (NUL characters, lone
 * surrogates, leap seconds, 2^63, 1e300, every enum member, every real id),
 * one request that is otherwise plain and valid, sent as a Global Administrator.
 */

type Segment = { kind: 'property'; name: string } | { kind: 'item' };
interface Leaf { part: 'params' | 'query' | 'body'; path: Segment[]; schema: JsonSchema; hint: string }

function leavesOf(part: Leaf['part'], schema: JsonSchema, path: Segment[] = [], hint = ''): Leaf[] {
  if (schema.properties) return Object.entries(schema.properties).flatMap(([name, s]) => leavesOf(part, s, [...path, { kind: 'property', name }], name));
  const valueSchema = recordValueSchema(schema);
  if (valueSchema) return leavesOf(part, valueSchema, [...path, { kind: 'property', name: 'isolation' }], hint);
  if (schema.type === 'array' && schema.items) return leavesOf(part, schema.items, [...path, { kind: 'item' }], hint);
  return [{ part, path, schema, hint }];
}

function awkwardValues(schema: JsonSchema, pools: IdPools, hint: string): unknown[] {
  if (schema.enum) return schema.enum;
  if (schema.const !== undefined) return [schema.const];
  if (schema.anyOf) return schema.anyOf.flatMap((s) => awkwardValues(s, pools, hint));
  switch (schema.type) {
    case 'string': {
      if (schema.format === 'uuid') {
        const pool = poolFor(pools, hint);
        return [...pool, pool[0]!.toUpperCase(), '00000000-0000-0000-0000-000000000000'];
      }
      if (schema.format === 'date-time') return ODD_DATE_TIMES;
      if (hint === 'cursor') return AWKWARD_CURSORS;
      const minLength = schema.minLength ?? 0;
      const maxLength = schema.maxLength ?? 256;
      const pattern = schema.pattern ? new RegExp(schema.pattern) : null;
      const named = hint === 'username' ? USERNAMES : hint === 'password' ? [PASSWORD] : [];
      return [...EDGE_STRINGS, ...named, 'x'.repeat(Math.max(minLength, 1)), 'x'.repeat(maxLength)]
        .filter((text) => text.length >= minLength && text.length <= maxLength && (pattern === null || pattern.test(text)));
    }
    case 'integer':
    case 'number': {
      const { minimum, maximum } = schema;
      return [minimum, maximum, 0, -1, 0.5, 2 ** 31, 2 ** 53 + 2, 2 ** 63, 1e300, -1e300].filter((n): n is number =>
        n !== undefined && (minimum === undefined || n >= minimum) && (maximum === undefined || n <= maximum) && (schema.type === 'number' || Number.isInteger(n)));
    }
    case 'boolean':
      return [true, false];
    default:
      return [];
  }
}

/** A plain valid value with only the required parts; strings are unique so that "name taken" does not hide what comes after. */
function plainValue(schema: JsonSchema, pools: IdPools, hint: string, unique: () => number): unknown {
  if (schema.enum) return schema.enum[0];
  if (schema.const !== undefined) return schema.const;
  if (schema.anyOf) return plainValue(schema.anyOf[0]!, pools, hint, unique);
  switch (schema.type) {
    case 'string': {
      if (schema.format === 'uuid') return poolFor(pools, hint)[0];
      if (schema.format === 'date-time') return '2026-11-01T00:00:00Z';
      const n = unique();
      const text = `v${n}`.padEnd(schema.minLength ?? 0, '-').slice(0, schema.maxLength ?? 256);
      if (!schema.pattern || new RegExp(schema.pattern).test(text)) return text;
      return fc.sample(fc.stringMatching(new RegExp(schema.pattern)), { seed: n, numRuns: 1 })[0];
    }
    case 'integer':
    case 'number':
      return Math.min(Math.max(1, schema.minimum ?? 1), schema.maximum ?? 1);
    case 'boolean':
      return false;
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => plainValue(schema.items ?? {}, pools, hint, unique));
    case 'object':
      return Object.fromEntries((schema.required ?? []).map((name) => [name, plainValue(schema.properties?.[name] ?? {}, pools, name, unique)]));
    default:
      return null;
  }
}

/** `container` with the value at `path` replaced; missing containers are created, an array becomes a one-item array. */
function place(container: unknown, path: Segment[], value: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return value;
  if (head.kind === 'item') return [place(Array.isArray(container) ? container[0] : undefined, rest, value)];
  const copy: Record<string, unknown> = typeof container === 'object' && container !== null && !Array.isArray(container) ? { ...container } : {};
  copy[head.name] = place(copy[head.name], rest, value);
  return copy;
}

const objectOf = (parameters: Parameter[]): JsonSchema => ({
  type: 'object',
  properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
  required: parameters.filter((p) => p.required).map((p) => p.name),
});

function queryString(query: Record<string, unknown>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    // An array becomes a repeated key, which a single-valued parameter must refuse.
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, toQueryValue(one));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** One request per (leaf field, awkward value) of the route; each otherwise plain and valid. */
function sweepRequests(route: RouteUnderTest, pools: IdPools): FuzzRequest[] {
  let counter = 0;
  const unique = () => ++counter;
  const pathHint = route.path.split('/')[2] ?? '';
  const paramsSchema = objectOf(route.params);
  const querySchema = objectOf(route.query);
  const leaves = [
    ...leavesOf('params', paramsSchema).map((leaf) => ({ ...leaf, hint: pathHint })),
    ...leavesOf('query', querySchema),
    ...(route.body ? leavesOf('body', route.body) : []),
  ];
  return leaves.flatMap((leaf) => awkwardValues(leaf.schema, pools, leaf.hint).map((value) => {
    const shape = {
      params: plainValue(paramsSchema, pools, pathHint, unique) as Record<string, unknown>,
      query: plainValue(querySchema, pools, '', unique) as Record<string, unknown>,
      body: route.body ? plainValue(route.body, pools, '', unique) : undefined,
    };
    const changed = { ...shape, [leaf.part]: place(shape[leaf.part], leaf.path, value) };
    const path = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(toQueryValue((changed.params as Record<string, unknown>)[name])));
    return {
      caller: { kind: 'bearer', who: 'global_admin' },
      method: route.method,
      url: `${path}${queryString(changed.query as Record<string, unknown>)}`,
      body: route.body ? json(changed.body) : NO_BODY,
      remoteAddress: `198.51.100.${counter % 250}`,
    } satisfies FuzzRequest;
  }));
}

// ---------------------------------------------------------------------------
// Seed
// ---------------------------------------------------------------------------

const SHA256 = 'ab'.repeat(32);
const ENTITIES = {
  isolate_device: { name: 'device' },
  stop_service: { name: 'miner.service' },
  contain_user: { name: 'mallory' },
  run_antivirus_scan: { name: 'device' },
  quarantine_file: { name: '/tmp/dropper.elf', sha256: SHA256, path: '/tmp/dropper.elf' },
} as const;
type SeedType = keyof typeof ENTITIES;

let seeded = 0;
function seedHelpers(t: TestContext, deviceId: () => string) {
  /**
   * A device has one open action per type and entity: each seeded service and
   * file is another one, and each isolation (whose entity is the device) is of another
   * device like the one chosen, in its group and of its platform.
   */
  const target = async (type: SeedType): Promise<{ deviceId: string; entity: { name: string; sha256?: string; path?: string } }> => {
    const chosen = deviceId();
    seeded++;
    if (type === 'stop_service') return { deviceId: chosen, entity: { name: `miner-${seeded}.service` } };
    if (type === 'quarantine_file') return { deviceId: chosen, entity: { ...ENTITIES.quarantine_file, sha256: seeded.toString(16).padStart(64, 'e') } };
    if (type !== 'isolate_device') return { deviceId: chosen, entity: ENTITIES[type] };
    const like = await t.store.db.selectFrom('devices').select(['platform', 'group_id']).where('id', '=', chosen).executeTakeFirstOrThrow();
    const platform = like.platform as 'linux' | 'windows' | 'macos';
    return { deviceId: await t.createDevice({ platform, name: `fuzz-isolated-${seeded}`, ...(like.group_id === null ? {} : { groupId: like.group_id }) }), entity: ENTITIES[type] };
  };
  const pending = async (type: SeedType = 'isolate_device') => t.createAction({ type, ...(await target(type)) });
  return {
    pending,
    async completed(type: SeedType = 'isolate_device'): Promise<string> {
      const id = await t.createAction({ type, ...(await target(type)), status: 'queued' });
      await t.complete(id);
      return id;
    },
    async rejected(type: SeedType = 'isolate_device'): Promise<string> {
      const id = await pending(type);
      await t.services.actions.reject(t.users.security_admin.actor, { ids: [id], comment: 'not needed' });
      return id;
    },
  };
}

const tokenIdOf = (secret: string): string => secret.split('_')[1]!;

async function seed(t: TestContext): Promise<FuzzState> {
  const { services, users } = t;
  const group = await services.devices.createGroup(systemActor(), { name: 'fuzz-servers', rank: 10, automationLevel: 'full' });
  const deviceIds = [
    await t.createDevice({ platform: 'linux', name: 'fuzz-linux' }),
    await t.createDevice({ platform: 'windows', name: 'fuzz-windows', groupId: group.id }),
    await t.createDevice({ platform: 'macos', name: 'fuzz-mac' }),
  ];
  let next = 0;
  const make = seedHelpers(t, () => deviceIds[next++ % 2]!);
  for (let i = 0; i < 3; i++) await make.pending('isolate_device');
  for (let i = 0; i < 2; i++) await make.pending('stop_service');
  await make.pending('quarantine_file');
  await make.completed('quarantine_file');
  await make.completed('quarantine_file');
  await make.completed('isolate_device');
  await make.completed('contain_user');
  await make.completed('run_antivirus_scan');
  await make.rejected('stop_service');
  const failed = await t.createAction({ type: 'stop_service', entity: ENTITIES.stop_service, deviceId: deviceIds[0]!, status: 'queued' });
  await t.complete(failed, 'failed');
  await t.createAction({ type: 'run_antivirus_scan', entity: ENTITIES.run_antivirus_scan, deviceId: deviceIds[0]!, status: 'queued' });

  const scoped = await createUser(services, 'security_reader', 'scoped-reader', [group.id]);
  const victimAdmin = await createUser(services, 'security_admin', 'victim-admin');
  const victimOperator = await createUser(services, 'security_operator', 'victim-operator', [group.id]);
  const narrow = await services.tokens.create(systemActor(), { name: 'read only', scopes: ['actions:read'], expiresInDays: 30 }, users.security_admin.actor);
  const revoked = await services.tokens.create(systemActor(), { name: 'revoked', scopes: [...PERMISSIONS], expiresInDays: 30 }, victimAdmin.actor);
  await services.tokens.revoke(systemActor(), revoked.token.id);
  const sessionUser = await createUser(services, 'security_operator', 'session-operator');

  const state: FuzzState = {
    bearer: {
      security_reader: users.security_reader.token,
      security_operator: users.security_operator.token,
      security_admin: users.security_admin.token,
      global_admin: users.global_admin.token,
      scoped_reader: scoped.token,
      narrow_token: narrow.secret,
      revoked_token: revoked.secret,
    },
    session: { cookie: '', csrfToken: '' },
    // The session user is never a generated target, and signs in from an address the generator does not use for failures.
    async signIn() {
      const res = await t.app.inject({ method: 'POST', url: API_PATHS.login, payload: { username: sessionUser.username, password: PASSWORD }, remoteAddress: '192.0.2.10' });
      expect(res.statusCode, res.body).toBe(200);
      const cookie = /quell_session=([^;]+)/.exec(String(res.headers['set-cookie']))?.[1];
      state.session = { cookie: cookie!, csrfToken: (res.json() as { csrfToken: string }).csrfToken };
    },
    victimUserIds: [victimAdmin.id, victimOperator.id],
    victimTokenIds: [tokenIdOf(victimAdmin.token), tokenIdOf(victimOperator.token), revoked.token.id],
    deviceIds,
  };
  await state.signIn();
  return state;
}

/** Successful generated decisions use up pending actions; keep some of two types for the next route. */
async function topUp(t: TestContext, state: FuzzState): Promise<void> {
  unchangedStore = null;
  unchangedStore = null;
  const make = seedHelpers(t, () => state.deviceIds[0]!);
  for (const type of ['isolate_device', 'stop_service'] as const) {
    const { n } = await t.store.db.selectFrom('actions').select((eb) => eb.fn.countAll<number>().as('n')).where('type', '=', type).where('status', '=', 'pending_approval').executeTakeFirstOrThrow();
    for (let i = Number(n); i < 3; i++) await make.pending(type);
  }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe(`Bad input over HTTP gets a 4xx problem and changes nothing (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  let state: FuzzState;
  beforeAll(async () => {
    state = await seed(ctx());
  });

  it('every table a request may write is guarded', async () => {
    expect(await tablesToGuard(ctx().store.db)).toEqual(expect.arrayContaining(MUST_GUARD));
  });

  it('the OpenAPI document lists the routes under test', () => {
    const listed = ROUTES.map((r) => `${r.method} ${r.path}`);
    expect(listed).toEqual(expect.arrayContaining(['POST /api/auth/login', 'GET /api/actions', 'POST /api/actions/approve', 'GET /api/actions/{id}', 'PATCH /api/users/{id}', 'DELETE /api/tokens/{id}']));
  });

  describe('bulk calls are all or nothing', () => {
    interface BulkCase {
      title: string;
      path: string;
      caller: Role;
      ids: (make: ReturnType<typeof seedHelpers>, t: TestContext) => Promise<string[]>;
      status: number;
      code: ErrorCode;
      /** The ids the problem's `actions` must name. */
      named?: (ids: string[]) => string[];
    }
    const CASES: BulkCase[] = [
      { title: 'approve naming one pending and one rejected action', path: API_PATHS.approve, caller: 'security_operator', ids: async (m) => [await m.pending(), await m.rejected()], status: 409, code: 'action_not_pending', named: (ids) => [ids[1]!] },
      { title: 'reject naming one pending and one completed action', path: API_PATHS.reject, caller: 'security_admin', ids: async (m) => [await m.pending(), await m.completed()], status: 409, code: 'action_not_pending', named: (ids) => [ids[1]!] },
      { title: 'approve naming actions of two types', path: API_PATHS.approve, caller: 'security_operator', ids: async (m) => [await m.pending('isolate_device'), await m.pending('stop_service')], status: 400, code: 'mixed_action_types' },
      { title: 'reject naming one real and one unknown id', path: API_PATHS.reject, caller: 'security_operator', ids: async (m) => [await m.pending(), '01890000-0000-7000-8000-000000000000'], status: 404, code: 'action_not_found', named: () => ['01890000-0000-7000-8000-000000000000'] },
      { title: 'approve naming the same action twice', path: API_PATHS.approve, caller: 'security_operator', ids: async (m) => { const id = await m.pending(); return [id, id]; }, status: 400, code: 'duplicate_ids' },
      { title: 'approve by a Security Reader', path: API_PATHS.approve, caller: 'security_reader', ids: async (m) => [await m.pending(), await m.pending()], status: 403, code: 'forbidden' },
      { title: 'cancel naming one pending and one rejected action', path: API_PATHS.cancel, caller: 'security_operator', ids: async (m) => [await m.pending(), await m.rejected()], status: 409, code: 'action_not_cancelable', named: (ids) => [ids[1]!] },
      { title: 'undo naming one completed and one pending action', path: API_PATHS.undo, caller: 'security_operator', ids: async (m) => [await m.completed(), await m.pending()], status: 409, code: 'action_not_completed', named: (ids) => [ids[1]!] },
      {
        // The first undo is written before the second one fails: the transaction must take it back.
        title: 'undo of two completed actions when the second already has an undo',
        path: API_PATHS.undo,
        caller: 'security_operator',
        ids: async (m, t) => {
          const [first, second] = [await m.completed(), await m.completed()];
          await t.services.actions.undo(t.users.security_operator.actor, { ids: [second] });
          return [first, second];
        },
        status: 409,
        code: 'undo_in_progress',
      },
      { title: 'undo of contain user by a Security Administrator', path: API_PATHS.undo, caller: 'security_admin', ids: async (m) => [await m.completed('contain_user'), await m.completed('contain_user')], status: 403, code: 'undo_role_required' },
      { title: 'undo of an action type that cannot be undone', path: API_PATHS.undo, caller: 'security_operator', ids: async (m) => [await m.completed('run_antivirus_scan')], status: 400, code: 'not_undoable' },
    ];

    it.each(CASES)('$title → $status $code, and nothing is written', async ({ path, caller, ids: build, status, code, named }) => {
      const t = ctx();
      const make = seedHelpers(t, () => state.deviceIds[0]!);
      const ids = await build(make, t);
      const before = await snapshot(t.store.db);
      const seq = await auditHead(t.store.db);
      const res = await t.request(t.users[caller], 'POST', path, { ids, comment: 'bulk' });
      expect(res.statusCode, res.body).toBe(status);
      expectProblem(res, res.body);
      expect(res.json().code).toBe(code);
      if (named) expect((res.json().actions as Array<{ id: string }>).map((a) => a.id)).toEqual(named(ids));
      expect(await snapshot(t.store.db)).toEqual(before);
      expect(await auditKindsSince(t.store.db, seq)).toEqual([]);
    });
  });

  describe('every field of every documented route, one awkward value at a time', () => {
    for (const route of ROUTES.filter((r) => r.params.length + r.query.length > 0 || r.body !== null)) {
      it(`${route.method} ${route.path} answers each with a 2xx or a catalogued 4xx problem, and a 4xx writes nothing`, async () => {
        const t = ctx();
        await topUp(t, state);
        const failures: string[] = [];
        for (const request of sweepRequests(route, await readPools(t, state))) {
          try {
            await sendAndCheck(t, state, request);
          } catch (error) {
            failures.push((error as Error).message.split('\n')[0]!);
          }
        }
        expect(failures).toEqual([]);
      }, 120_000);
    }
  });

  describe('generated requests to every documented route', () => {
    for (const route of ROUTES) {
      it(`${route.method} ${route.path} answers with a 2xx or a catalogued 4xx problem, and a 4xx writes nothing`, async () => {
        const t = ctx();
        await topUp(t, state);
        const pools = await readPools(t, state);
        await fc.assert(fc.asyncProperty(requestArb(route, pools), (request) => sendAndCheck(t, state, request)), { numRuns: RUNS_PER_ROUTE });
      }, 120_000);
    }
  });

  it('the audit chain still verifies after all of it', async () => {
    const t = ctx();
    const res = await t.request(t.users.security_reader, 'GET', API_PATHS.auditVerify);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, firstBadSeq: null });
  });
});
