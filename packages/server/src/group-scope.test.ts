/**
 * The promise of DESIGN.md §4 — users scoped to device groups never see
 * outside them — checked on every read the API has, generated from the
 * OpenAPI document so that a route added later is covered the day it is added.
 *
 * Two device groups, A and B, get the same kinds of objects: devices (one
 * enrolled by an agent through a group rule), actions in every common state
 * with an approval, a rejection, an undo, a quarantine of a file both groups
 * share and an investigation package, an alert with its incident and
 * investigation, triage, an indicator for the group, a device moved from B
 * into A, and the audit entries all of that wrote. Everything of a group is
 * named with text unique to it: its markers.
 *
 * Then every GET operation is called by A's scoped reader, operator and
 * administrator with every path id of both groups and with each query
 * parameter set in turn to the values it can take. No answer may hold a marker
 * of B that the request did not itself carry, and none may be a 5xx. A path or
 * query parameter the test has no values for fails its route by name: give it
 * values in PATH_VALUES or QUERY_VALUES.
 *
 * Controls keep the test from passing by seeing nothing: every route answers
 * A's users at least once with a 2xx, A's users together see every marker of
 * A, and an unscoped administrator sees every marker of B on the same calls.
 */
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { type Ed25519PublicJwk, packageUploadMessage } from '@quell/contracts';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemActor } from './actor.ts';
import { PASSWORD, TEST_DIALECT, type TestUser, createUser, setupTestApp } from './test/helper.ts';

// ---------------------------------------------------------------------------
// The GET operations, read from the OpenAPI document
// ---------------------------------------------------------------------------

interface ParameterSchema { type?: string; enum?: unknown[]; minimum?: number; maximum?: number; anyOf?: ParameterSchema[] }
interface Parameter { name: string; in: string; required?: boolean; schema: ParameterSchema }
interface OpenApiDocument { paths: Record<string, Record<string, { parameters?: Parameter[] }>> }
interface Route { path: string; parameters: Parameter[] }

const t = await setupTestApp();
afterAll(() => t.close());
await t.app.ready();
const ROUTES: Route[] = Object.entries((t.app.swagger() as unknown as OpenApiDocument).paths)
  .flatMap(([path, operations]) => (operations.get ? [{ path, parameters: operations.get.parameters ?? [] }] : []));

/**
 * Every GET route the server has, with its path written as in the OpenAPI
 * document, read from the router itself: a route left out of the document
 * (`schema: { hide: true }`) would otherwise escape this check. Wildcard
 * paths come out without the slash before their `*`.
 */
function registeredReads(): string[] {
  const paths: string[] = [];
  const branch: string[] = [];
  for (const line of t.app.printRoutes({ commonPrefix: false, method: 'GET' }).split('\n')) {
    const node = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!node) continue;
    branch.length = node[1]!.length / 4;
    branch.push(node[2]!);
    if (node[3]?.split(', ').includes('GET')) paths.push(branch.join('').replace(/^(?!\/)/, '/').replace(/:(\w+)/g, '{$1}'));
  }
  return paths;
}

/**
 * GET routes outside the OpenAPI document, and why no device group's objects
 * can be read through them. Add a route here only with a reason as good.
 */
const READS_OUTSIDE_THE_DOCUMENT: Array<{ matches: (path: string) => boolean; why: string }> = [
  { matches: (path) => path === '/api/openapi.json', why: 'the OpenAPI document itself' },
  { matches: (path) => path === '/api/docs' || path.startsWith('/api/docs/') || path.startsWith('/api/docs*'), why: 'the API docs page and its static files' },
  { matches: (path) => path === '/*', why: "the web console's built files, the same for everyone" },
];

/**
 * Routes that may refuse a scoped user everything: metrics are for a
 * monitoring token, not for people. Their answers are still checked.
 */
const MAY_REFUSE_SCOPED_USERS = new Set(['/metrics']);

// ---------------------------------------------------------------------------
// Two device groups with the same kinds of objects
// ---------------------------------------------------------------------------

/** Who calls: a user of the group by API token, or by a signed-in session. */
interface Caller { label: string; headers: Record<string, string> }

interface World {
  name: 'A' | 'B';
  groupId: string;
  users: TestUser[];
  callers: Caller[];
  operator: TestUser;
  /** Every text that names something of this group alone, with what it names. */
  markers: Map<string, string>;
  /** Ids of everything made in the group, for path parameters. */
  ids: string[];
  deviceIds: string[];
  investigationIds: string[];
  incidentIds: string[];
  alertIds: string[];
  entities: string[];
  indicatorValues: string[];
  /** Audit seqs of the group's entries, to page from. */
  auditSeqs: number[];
  /** Page cursors an unscoped administrator was given on the group's rows. */
  cursors: string[];
}

const DAY = '2026-11-01T11:00:00.000Z';
const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');
/** The file both groups quarantined: its hash names neither, so instances across groups must be kept apart. */
const SHARED_SHA256 = sha256('shared by both groups');

/** A gzip-compressed tar archive with one file, as agents upload investigation packages. */
function tarGz(name: string, content: string): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write('0000644\0', 100);
  header.write(`${Buffer.byteLength(content).toString(8).padStart(11, '0')}\0`, 124);
  header.write('ustar\0', 257);
  header.write('00', 263);
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(content) / 512) * 512);
  body.write(content);
  return gzipSync(Buffer.concat([header, body, Buffer.alloc(1024)]));
}

async function call(user: TestUser, method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown) {
  const res = await t.request(user, method, url, body);
  expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
  return res.json();
}

async function buildWorld(name: 'A' | 'B', rank: number): Promise<World> {
  const unique = `${name.toLowerCase()}${randomUUID().slice(0, 8)}`;
  const markers = new Map<string, string>();
  const mark = (value: string, what: string): string => {
    markers.set(value, what);
    return value;
  };
  const admin = t.users.global_admin;
  const group = await t.services.devices.createGroup(admin.actor, {
    name: mark(`group-${unique}`, 'device group name'), rank, automationLevel: 'semi_any_folder', rule: { namePattern: `enrolled-${unique}-*` },
  });
  const [reader, operator, groupAdmin] = [
    await createUser(t.services, 'security_reader', `reader-${unique}`, [group.id]),
    await createUser(t.services, 'security_operator', `operator-${unique}`, [group.id]),
    await createUser(t.services, 'security_admin', `admin-${unique}`, [group.id]),
  ];
  const deviceId = await t.createDevice({ groupId: group.id, name: mark(`host-${unique}`, 'device name') });

  // Actions: approved, completed and undone; rejected; a quarantine of the shared file; a pending one.
  const isolate = await t.createAction({ by: operator, deviceId, entity: { name: mark(`isolated-${unique}`, 'action entity') } });
  await call(operator, 'POST', '/api/actions/approve', { ids: [isolate], comment: mark(`approved-${unique}`, 'decision comment') });
  await t.complete(isolate);
  await call(operator, 'POST', '/api/actions/undo', { ids: [isolate], comment: mark(`undone-${unique}`, 'undo comment') });
  const rejected = await t.createAction({ by: operator, deviceId, type: 'stop_service', entity: { name: mark(`service-${unique}`, 'action entity') } });
  await call(operator, 'POST', '/api/actions/reject', { ids: [rejected], comment: mark(`rejected-${unique}`, 'decision comment') });
  const quarantine = await t.createAction({
    by: operator, deviceId, type: 'quarantine_file', status: 'queued',
    entity: { name: mark(`payload-${unique}.bin`, 'quarantined file name'), path: mark(`/tmp/${unique}/payload.bin`, 'quarantined file path'), sha256: SHARED_SHA256 },
  });
  await t.complete(quarantine);
  await t.createAction({ by: operator, deviceId, type: 'run_antivirus_scan', entity: { name: mark(`scan-${unique}`, 'action entity') } });

  // An agent enrols and lands in the group by its rule; its investigation package is uploaded.
  const keys = generateKeyPairSync('ed25519');
  const { secret } = await t.services.agents.createEnrolmentToken(admin.actor, { name: `enrol ${unique}`, uses: 1, expiresInDays: 1 });
  const enrolled = await t.services.agents.enrol({
    token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (keys.publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
    facts: { hostname: mark(`enrolled-${unique}-01`, 'enrolled host name'), platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
  }, '192.0.2.10');
  const collect = await t.createAction({ by: operator, deviceId: enrolled.deviceId, type: 'collect_investigation_package', status: 'queued', entity: { name: mark(`package-${unique}`, 'action entity') } });
  await t.services.actions.recordDelivery(systemActor('agent'), collect);
  const archive = tarGz('evidence.txt', `evidence of ${unique}`);
  const signature = sign(null, Buffer.from(packageUploadMessage(collect, enrolled.deviceId, sha256(archive))), keys.privateKey).toString('base64url');
  await t.services.agents.storePackage(collect, enrolled.deviceId, signature, archive);
  await t.services.actions.recordResult(systemActor('agent'), collect, { outcome: 'completed', output: 'collected' });

  // An alert starts an investigation and opens an incident; both are triaged.
  const malware = sha256(`malware of ${unique}`);
  const alert = await call(operator, 'POST', '/api/alerts', {
    title: mark(`alert-${unique}`, 'alert title'), description: mark(`described-${unique}`, 'alert description'), severity: 'high', category: 'malware',
    detectionSource: 'edr-rules', externalId: mark(`external-${unique}`, 'alert external id'), deviceId, occurredAt: DAY,
    evidence: [{ kind: 'file', path: mark(`/opt/${unique}/dropper`, 'evidence path'), sha256: mark(malware, 'evidence hash') }],
  });
  await t.services.investigations.runDue();
  await call(operator, 'PATCH', `/api/alerts/${alert.id}`, { status: 'in_progress', comment: mark(`triaged-${unique}`, 'triage comment') });
  const { incidentId } = await call(admin, 'GET', `/api/alerts/${alert.id}`);
  await call(operator, 'PATCH', `/api/incidents/${incidentId}`, { status: 'resolved' });

  // An indicator for this group only.
  const indicatorValue = mark(sha256(`indicator of ${unique}`), 'indicator value');
  const { id: indicatorId } = await call(groupAdmin, 'POST', '/api/indicators', { type: 'sha256', value: indicatorValue, action: 'block', title: mark(`indicator-${unique}`, 'indicator title'), deviceGroupIds: [group.id] });
  await recordHit(indicatorId, deviceId, mark(`/tmp/hit-${unique}`, 'indicator hit path'));

  return {
    name, groupId: mark(group.id, 'device group id'), users: [reader, operator, groupAdmin], callers: [], operator, markers, ids: [], deviceIds: [deviceId], investigationIds: [], incidentIds: [], alertIds: [],
    entities: [`isolated-${unique}`, `payload-${unique}.bin`, SHARED_SHA256, malware], indicatorValues: [indicatorValue], auditSeqs: [], cursors: [],
  };
}

/**
 * Everything the group holds once all is done, read from the database so
 * that what the server made by itself (investigation actions, undo actions,
 * audit entries) is named too: ids, and the hashes of audit entries that
 * concern this group alone.
 */
async function collect(world: World): Promise<void> {
  const { db } = t.store;
  const mark = (value: string, what: string) => world.markers.set(value, what);
  const byGroup = async (table: 'devices' | 'actions' | 'alerts' | 'investigations') =>
    (await db.selectFrom(table).select('id').where('group_id', '=', world.groupId).execute()).map((row) => row.id);
  world.deviceIds = await byGroup('devices');
  world.investigationIds = await byGroup('investigations');
  // An incident is the group's when all its alerts are: one that alerts of both groups joined is neither's.
  const alerts = await db.selectFrom('alerts').select(['incident_id', 'group_id']).where('incident_id', 'is not', null).execute();
  const incidents = [...new Set(alerts.filter((a) => a.group_id === world.groupId).map((a) => a.incident_id!))]
    .filter((id) => alerts.every((a) => a.incident_id !== id || a.group_id === world.groupId));
  world.incidentIds = incidents;
  const indicators = (await db.selectFrom('indicators').select(['id', 'device_group_ids']).execute()).filter((row) => (JSON.parse(row.device_group_ids) as string[]).includes(world.groupId));
  world.alertIds = await byGroup('alerts');
  const kinds = { device: world.deviceIds, action: await byGroup('actions'), alert: world.alertIds, investigation: world.investigationIds, incident: incidents, indicator: indicators.map((i) => i.id) };
  for (const [kind, ids] of Object.entries(kinds)) for (const id of ids) mark(id, `${kind} id`);
  world.ids = [world.groupId, ...Object.values(kinds).flat()];
  const entries = (await db.selectFrom('audit_log').select(['seq', 'hash', 'group_ids']).execute())
    .filter((row) => row.group_ids !== null && (JSON.parse(row.group_ids) as string[]).includes(world.groupId));
  for (const entry of entries) if (entry.group_ids === JSON.stringify([world.groupId])) mark(entry.hash, 'audit entry hash');
  world.auditSeqs = entries.map((entry) => entry.seq + 1);
  world.callers = world.users.map((user) => ({ label: `${user.role} of ${world.name} (token)`, headers: t.as(user) }));
  const login = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { username: world.users[0]!.username, password: PASSWORD } });
  expect(login.statusCode, login.body).toBe(200);
  const cookie = [login.headers['set-cookie']].flat().map((c) => String(c).split(';')[0]).join('; ');
  world.callers.push({ label: `${world.users[0]!.role} of ${world.name} (session)`, headers: { cookie } });
  const admin = t.users.global_admin;
  for (const url of [`/api/actions?view=history&limit=1&deviceId=${world.deviceIds[0]}`, `/api/alerts?limit=1&deviceId=${world.deviceIds[0]}`]) {
    const cursor = (await call(admin, 'GET', url)).nextCursor as string | null;
    if (cursor) world.cursors.push(cursor);
  }
}

/** A hit an agent reported, as the server keeps it (the agent's side is tested with real agents). */
async function recordHit(indicatorId: string, deviceId: string, path: string): Promise<void> {
  const at = Date.parse(DAY);
  const hit = { value: 'a'.repeat(64), action: 'block', path, count: 1, firstAt: at, lastAt: at };
  await t.store.db.insertInto('indicator_hits').values({ indicator_id: indicatorId, device_id: deviceId, hour: at, action: 'block', count: 1, first_at: at, last_at: at, last_hit: JSON.stringify(hit) }).execute();
}

let A: World;
let B: World;
/** Objects of both groups, whose ids are asked for too: what each group sees of them is its own part. */
const sharedIds: string[] = [];

beforeAll(async () => {
  A = await buildWorld('A', 10);
  B = await buildWorld('B', 11);
  // A device of B with a pending action is moved into A: the device is A's now, its past stays B's.
  const moved = await t.createDevice({ groupId: B.groupId, name: `moved-${randomUUID().slice(0, 8)}` });
  await t.createAction({ by: B.operator, deviceId: moved, entity: { name: `before-the-move-${randomUUID().slice(0, 8)}` } });
  await call(t.users.global_admin, 'PATCH', `/api/devices/${moved}`, { groupId: A.groupId });
  // The same file on a device of each group: B's alert opens an incident that A's joins, and A's investigation follows the file to B's device.
  const file = sha256('a file on a device of each group');
  for (const world of [B, A]) {
    const tag = `${world.name.toLowerCase()}${randomUUID().slice(0, 8)}`;
    const title = `shared-alert-${tag}`;
    world.markers.set(title, 'alert title');
    const path = `/var/tmp/${tag}/implant`;
    world.markers.set(path, 'evidence path');
    const alert = await call(world.operator, 'POST', '/api/alerts', {
      title, severity: 'high', category: 'malware', detectionSource: 'edr-rules', deviceId: world.deviceIds[0], occurredAt: DAY, evidence: [{ kind: 'file', path, sha256: file }],
    });
    await t.services.investigations.runDue();
    if (world === A) sharedIds.push((await call(t.users.global_admin, 'GET', `/api/alerts/${alert.id}`)).incidentId);
  }
  // An indicator for every device, hit in both groups: each group sees its own hits only.
  const global = await call(t.users.global_admin, 'POST', '/api/indicators', { type: 'ip', value: '203.0.113.66', action: 'audit', title: 'everyone\'s' });
  sharedIds.push(global.id);
  for (const world of [A, B]) {
    const path = `/tmp/global-hit-${world.name.toLowerCase()}${randomUUID().slice(0, 8)}`;
    world.markers.set(path, 'indicator hit path');
    await recordHit(global.id, world.deviceIds[0]!, path);
  }
  await collect(A);
  await collect(B);
}, 120_000);

// ---------------------------------------------------------------------------
// The values each parameter takes, by name
// ---------------------------------------------------------------------------

type Value = string | number | boolean;
const both = <T>(pick: (world: World) => T[]): T[] => [...pick(A), ...pick(B)];

/** Path parameters: every id of both groups, and one of nothing. */
const PATH_VALUES: Record<string, () => string[]> = {
  id: () => [...both((w) => w.ids), ...sharedIds, randomUUID()],
};

/** Query parameters that are neither enums nor booleans (those take each of their values by themselves). */
const QUERY_VALUES: Record<string, (schema: ParameterSchema) => Value[]> = {
  deviceId: () => both((w) => w.deviceIds),
  investigationId: () => both((w) => w.investigationIds),
  incidentId: () => [...both((w) => w.incidentIds), ...sharedIds],
  alertId: () => [...both((w) => w.alertIds), ...sharedIds],
  indicatorId: () => [...both((w) => w.ids), ...sharedIds],
  targetId: () => both((w) => w.ids),
  entity: () => both((w) => w.entities),
  value: () => both((w) => w.indicatorValues),
  decidedBy: () => [...both((w) => [w.operator.username]), 'Automation'],
  actor: () => both((w) => w.users.map((u) => u.username)),
  kind: () => ['action.create', 'action.approve', 'action.undo_requested', 'alert.create', 'alert.update', 'incident.update', 'investigation.start', 'agent.enrol', 'device.update', 'indicator.create'],
  from: () => ['2000-01-01T00:00:00.000Z', DAY],
  to: () => ['2100-01-01T00:00:00.000Z'],
  limit: (schema) => [schema.minimum ?? 1, schema.maximum ?? 1000],
  cursor: () => both((w) => w.cursors),
  before: () => both((w) => w.auditSeqs),
};

function enumValues(schema: ParameterSchema): Value[] | null {
  if (schema.enum) return schema.enum as Value[];
  if (schema.type === 'boolean') return [true, false];
  if (schema.anyOf?.every((s) => s.enum || (s as { const?: unknown }).const !== undefined)) {
    return schema.anyOf.flatMap((s) => (s.enum as Value[] | undefined) ?? [(s as { const: Value }).const]);
  }
  return null;
}

function valuesOf(route: Route, parameter: Parameter): Value[] {
  const values = enumValues(parameter.schema) ?? QUERY_VALUES[parameter.name]?.(parameter.schema);
  if (!values) throw new Error(`GET ${route.path}: the query parameter "${parameter.name}" has no values to test with; add them to QUERY_VALUES in group-scope.test.ts`);
  return values;
}

/** One URL per path id, and per path: the required query parameters in every combination, alone and with each optional one set in turn. */
function urlsOf(route: Route): string[] {
  let paths = [route.path];
  for (const parameter of route.parameters.filter((p) => p.in === 'path')) {
    const values = PATH_VALUES[parameter.name];
    if (!values) throw new Error(`GET ${route.path}: the path parameter "${parameter.name}" has no values to test with; add them to PATH_VALUES in group-scope.test.ts`);
    paths = paths.flatMap((path) => values().map((value) => path.replace(`{${parameter.name}}`, encodeURIComponent(value))));
  }
  const query = route.parameters.filter((p) => p.in === 'query');
  let bases: Array<Array<[string, Value]>> = [[]];
  for (const parameter of query.filter((p) => p.required)) bases = bases.flatMap((base) => valuesOf(route, parameter).map((value): Array<[string, Value]> => [...base, [parameter.name, value]]));
  const optional = query.filter((p) => !p.required);
  const queries = bases.flatMap((base) => [base, ...optional.flatMap((parameter) => valuesOf(route, parameter).map((value): Array<[string, Value]> => [...base, [parameter.name, value]]))]);
  return paths.flatMap((path) => queries.map((q) => (q.length === 0 ? path : `${path}?${new URLSearchParams(q.map(([k, v]): [string, string] => [k, String(v)]))}`)));
}

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

/** The markers an answer shows, leaving out those the URL itself carried (a 404 may name the id it was asked for). */
function shown(res: LightMyRequestResponse, url: string, markers: Map<string, string>): Array<[string, string]> {
  const asked = decodeURIComponent(url);
  const answer = `${JSON.stringify(res.headers)}\n${res.body}`;
  return [...markers].filter(([marker]) => !asked.includes(marker) && answer.includes(marker));
}

const seenOfA = new Set<string>();
const seenOfBByAdmin = new Set<string>();
const routesChecked = new Set<string>();

describe(`every GET route shows a user scoped to one device group nothing of another group (${TEST_DIALECT})`, () => {
  it('the OpenAPI document has the reads this test knows to look for', () => {
    const paths = ROUTES.map((r) => r.path);
    for (const path of ['/api/actions', '/api/actions/export.csv', '/api/actions/summary', '/api/actions/activity', '/api/audit', '/api/alerts', '/api/incidents', '/api/investigations', '/api/devices', '/metrics']) {
      expect(paths).toContain(path);
    }
  });

  it('every GET route the server has is in the OpenAPI document, so none escapes this check', () => {
    const registered = registeredReads();
    // The router is read right: every documented read is among what it lists.
    expect(ROUTES.map((r) => r.path).filter((path) => !registered.includes(path))).toEqual([]);
    const documented = new Set(ROUTES.map((r) => r.path));
    const unchecked = registered.filter((path) => !documented.has(path) && !READS_OUTSIDE_THE_DOCUMENT.some((read) => read.matches(path)));
    expect(unchecked, 'GET routes left out of the OpenAPI document: document them, so that this file checks them').toEqual([]);
  });

  for (const route of ROUTES) {
    it(`GET ${route.path}`, async () => {
      const urls = urlsOf(route);
      const leaks: string[] = [];
      let answered = false;
      for (const url of urls) {
        for (const caller of A.callers) {
          const res = await t.app.inject({ method: 'GET', url, headers: caller.headers });
          if (res.statusCode >= 500) leaks.push(`${caller.label}: GET ${url} answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
          if (res.statusCode < 300) answered = true;
          for (const [marker, what] of shown(res, url, B.markers)) leaks.push(`${caller.label}: GET ${url} (${res.statusCode}) shows B's ${what} ${marker}`);
          for (const [marker] of shown(res, url, A.markers)) seenOfA.add(marker);
        }
        const res = await t.request(t.users.global_admin, 'GET', url);
        for (const [marker] of shown(res, url, B.markers)) seenOfBByAdmin.add(marker);
      }
      expect(leaks.slice(0, 25), `${leaks.length} answers leak or fail`).toEqual([]);
      if (!MAY_REFUSE_SCOPED_USERS.has(route.path)) {
        expect(answered, `GET ${route.path} never answered A's users with a 2xx in ${urls.length} calls: give it values it can answer, or it tests nothing`).toBe(true);
      }
      routesChecked.add(route.path);
    }, 600_000);
  }

  it('the check can see: A\'s users saw every marker of A, and an unscoped administrator every marker of B', () => {
    expect([...routesChecked].sort(), 'run the whole file: this control adds up what every route showed').toEqual(ROUTES.map((r) => r.path).sort());
    expect([...A.markers].filter(([marker]) => !seenOfA.has(marker)).map(([marker, what]) => `${what} ${marker}`)).toEqual([]);
    expect([...B.markers].filter(([marker]) => !seenOfBByAdmin.has(marker)).map(([marker, what]) => `${what} ${marker}`)).toEqual([]);
  });
});
