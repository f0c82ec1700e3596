import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { migrate } from '../../db/migrate.ts';
import { openStore } from '../../db/store.ts';
import { TEST_DIALECT, type TestUser, createUser, useTestApp } from '../../test/helper.ts';
import { createTestDatabase } from '../../test/store.ts';

const run = promisify(execFile);
const QUELL = new URL('../../../../cli/bin/quell.js', import.meta.url).pathname;

describe(`audit log chain (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  async function verifyCli(): Promise<{ code: number; stdout: string }> {
    try {
      const { stdout } = await run(process.execPath, [QUELL, 'audit', 'verify'], { env: { ...process.env, ...ctx().db.env } });
      return { code: 0, stdout };
    } catch (error) {
      const failed = error as { code: number; stdout: string };
      return { code: failed.code, stdout: failed.stdout };
    }
  }

  it('records who did what from where, with before and after', async () => {
    const { request, users, app } = ctx();
    const id = await ctx().createAction();
    await app.inject({ method: 'POST', url: '/api/actions/reject', remoteAddress: '192.0.2.7', headers: ctx().as(users.security_admin), payload: { ids: [id], comment: 'benign' } });
    const entries = (await request(users.security_reader, 'GET', `/api/audit?targetId=${id}`)).json().items;
    expect(entries.map((e: { kind: string }) => e.kind)).toEqual(['action.reject', 'action.create']);
    expect(entries[0]).toMatchObject({ actor: 'security-admin', sourceIp: '192.0.2.7', targetType: 'action', before: { status: 'pending_approval' }, after: { status: 'rejected', comment: 'benign' } });
    // The target by its name; only an agent's act names a device as its actor.
    const action = (await request(users.security_reader, 'GET', `/api/actions/${id}`)).json().action;
    expect(entries[0]).toMatchObject({ targetName: `Isolate device of ${action.entity.name} on ${action.deviceName}`, actorName: null });
  });

  it('names the device of an agent that acted, and the target of each kind; a target gone has no name', async () => {
    const { request, users, services } = ctx();
    const deviceId = await ctx().createDevice({ name: 'named-host' });
    await services.audit.recordAlone(systemActor(`agent:${deviceId}`), { kind: 'agent.test', targetType: 'device', targetId: deviceId });
    await services.audit.recordAlone(systemActor(), { kind: 'device.test', targetType: 'device', targetId: '00000000-0000-7000-8000-000000000000' });
    const entries = (await request(users.security_admin, 'GET', '/api/audit?limit=2')).json().items;
    expect(entries[0]).toMatchObject({ kind: 'device.test', targetName: null, actorName: null });
    expect(entries[1]).toMatchObject({ kind: 'agent.test', actor: `agent:${deviceId}`, actorName: 'named-host', targetName: 'named-host' });
  });

  it('detects an edited entry', async () => {
    const { store, services } = ctx();
    expect((await verifyCli()).code).toBe(0);
    const victim = await store.db.selectFrom('audit_log').select(['seq', 'actor']).where('kind', '=', 'action.reject').executeTakeFirstOrThrow();
    await store.db.updateTable('audit_log').set({ actor: 'someone-else' }).where('seq', '=', victim.seq).execute();
    const result = await services.audit.verify();
    expect(result).toMatchObject({ ok: false, firstBadSeq: victim.seq });
    const cli = await verifyCli();
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`BROKEN at entry ${victim.seq}`);
    await store.db.updateTable('audit_log').set({ actor: victim.actor }).where('seq', '=', victim.seq).execute();
    expect((await services.audit.verify()).ok).toBe(true);
  });

  it('detects a deleted entry in the middle and at the end', async () => {
    const { store, services } = ctx();
    const rows = await store.db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
    const middle = rows[Math.floor(rows.length / 2)]!;
    await store.db.deleteFrom('audit_log').where('seq', '=', middle.seq).execute();
    expect(await services.audit.verify()).toMatchObject({ ok: false, firstBadSeq: middle.seq });
    await store.db.insertInto('audit_log').values(middle).execute();
    expect((await services.audit.verify()).ok).toBe(true);

    const last = rows[rows.length - 1]!;
    await store.db.deleteFrom('audit_log').where('seq', '=', last.seq).execute();
    expect(await services.audit.verify()).toMatchObject({ ok: false, firstBadSeq: last.seq });
    expect((await verifyCli()).code).toBe(1);
    await store.db.insertInto('audit_log').values(last).execute();
    expect((await verifyCli()).code).toBe(0);
  });

  it('tells a scoped user only whether the chain holds, the whole chain verified; unscoped readers also where it breaks', async () => {
    const { store, services } = ctx();
    const group = await services.devices.createGroup(systemActor(), { name: 'verify-scope', rank: 90, automationLevel: 'semi_any_folder' });
    const scoped = await createUser(services, 'security_reader', 'verify-scoped', [group.id]);
    const verify = async (user: TestUser) => (await ctx().request(user, 'GET', '/api/audit/verify')).json();
    expect(await verify(scoped)).toEqual({ ok: true });

    // Broken in an entry the scoped user cannot read: it is still found, and they are told no more than that.
    const victim = await store.db.selectFrom('audit_log').select(['seq', 'actor']).where('kind', '=', 'user.create').orderBy('seq').executeTakeFirstOrThrow();
    await store.db.updateTable('audit_log').set({ actor: 'someone-else' }).where('seq', '=', victim.seq).execute();
    try {
      expect(await verify(scoped)).toEqual({ ok: false });
      expect(await verify(ctx().users.security_reader)).toMatchObject({ ok: false, firstBadSeq: victim.seq, reason: expect.stringContaining(`entry ${victim.seq}`) });
    } finally {
      await store.db.updateTable('audit_log').set({ actor: victim.actor }).where('seq', '=', victim.seq).execute();
    }
    expect(await verify(scoped)).toEqual({ ok: true });
  });

  it('is readable by readers through GET /api/audit/verify', async () => {
    const res = await ctx().request(ctx().users.security_reader, 'GET', '/api/audit/verify');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ ok: true, firstBadSeq: null });
    expect(res.json().checked).toBeGreaterThan(10);
  });
});

interface Entry { seq: number; kind: string; actor: string; targetId: string | null; deviceGroupIds: string[] | null; hash: string }

describe(`audit log scoped to device groups (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const read = async (user: TestUser, query = ''): Promise<Entry[]> => {
    const res = await ctx().request(user, 'GET', `/api/audit?limit=500${query}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().items;
  };
  const targets = (entries: Entry[]) => new Set(entries.map((e) => e.targetId));

  it('a scoped user reads the entries of their groups and their own acts; entries about no device are for unscoped Security Administrators and up', async () => {
    const { services, users } = ctx();
    const [mine, theirs] = [
      await services.devices.createGroup(systemActor(), { name: 'east', rank: 1, automationLevel: 'semi_any_folder' }),
      await services.devices.createGroup(systemActor(), { name: 'west', rank: 2, automationLevel: 'semi_any_folder' }),
    ];
    const reader = await createUser(services, 'security_reader', 'east-reader', [mine.id]);
    const operator = await createUser(services, 'security_operator', 'east-operator', [mine.id]);
    const admin = await createUser(services, 'security_admin', 'east-admin', [mine.id]);
    const east = await ctx().createAction({ by: operator, deviceId: await ctx().createDevice({ groupId: mine.id }) });
    const west = await ctx().createAction({ deviceId: await ctx().createDevice({ groupId: theirs.id }) });
    const ungrouped = await ctx().createAction({ deviceId: await ctx().createDevice() });
    const token = (await ctx().request(admin, 'POST', '/api/tokens', { name: 'east script', scopes: ['actions:read'], expiresInDays: 1 })).json().token.id as string;
    const otherToken = (await ctx().request(users.security_admin, 'POST', '/api/tokens', { name: 'west script', scopes: ['actions:read'], expiresInDays: 1 })).json().token.id as string;

    const created = (await read(users.global_admin, `&targetId=${east}`))[0]!;
    expect(created).toMatchObject({ kind: 'action.create', actor: 'east-operator', deviceGroupIds: [mine.id] });
    expect((await read(users.global_admin, `&targetId=${ungrouped}`))[0]!.deviceGroupIds).toEqual([]);
    expect((await read(users.global_admin, `&targetId=${token}`))[0]!.deviceGroupIds).toBeNull();

    for (const scoped of [reader, operator, admin]) {
      const seen = await read(scoped);
      expect(targets(seen), scoped.username).toContain(east);
      expect(targets(seen), scoped.username).not.toContain(west);
      expect(targets(seen), scoped.username).not.toContain(ungrouped);
      const outside = seen.filter((e) => e.deviceGroupIds === null || e.deviceGroupIds.length === 0 || e.deviceGroupIds.some((g) => g !== mine.id));
      expect(outside.filter((e) => e.actor !== scoped.username), scoped.username).toEqual([]);
      expect(await read(scoped, `&targetId=${west}`)).toEqual([]);
    }
    // Their own acts that concern no device: the scoped administrator's token, not anyone else's, not the users made for this test.
    expect(targets(await read(admin))).toContain(token);
    expect(targets(await read(admin))).not.toContain(otherToken);
    expect((await read(admin)).some((e) => e.kind === 'user.create')).toBe(false);

    // Unscoped readers and operators: every device, in a group or not; about no device, only their own acts.
    for (const unscoped of [users.security_reader, users.security_operator]) {
      const seen = await read(unscoped);
      for (const id of [east, west, ungrouped]) expect(targets(seen), unscoped.username).toContain(id);
      expect(seen.filter((e) => e.deviceGroupIds === null && e.actor !== unscoped.username)).toEqual([]);
    }
    // Unscoped Security Administrators and up: everything.
    for (const unscoped of [users.security_admin, users.global_admin]) {
      const seen = await read(unscoped);
      for (const id of [east, west, ungrouped, token, otherToken]) expect(targets(seen), unscoped.username).toContain(id);
      expect(seen.some((e) => e.kind === 'user.create')).toBe(true);
    }
  });

  it('a device moved between groups concerns both: the move is read by neither group alone', async () => {
    const { services, users } = ctx();
    const [from, to] = [
      await services.devices.createGroup(systemActor(), { name: 'from', rank: 3, automationLevel: 'semi_any_folder' }),
      await services.devices.createGroup(systemActor(), { name: 'to', rank: 4, automationLevel: 'semi_any_folder' }),
    ];
    const device = await ctx().createDevice({ groupId: from.id });
    expect((await ctx().request(users.global_admin, 'PATCH', `/api/devices/${device}`, { groupId: to.id })).statusCode).toBe(200);
    const move = (await read(users.global_admin, `&targetId=${device}&kind=device.update`))[0]!;
    expect(move.deviceGroupIds).toEqual([from.id, to.id].sort());
    for (const group of [from, to]) {
      const scoped = await createUser(services, 'security_reader', `reader-of-${group.name}`, [group.id]);
      expect((await read(scoped, `&targetId=${device}`)).map((e) => e.kind), group.name).toEqual(group === from ? ['device.create'] : []);
    }
    const both = await createUser(services, 'security_reader', 'reader-of-both', [from.id, to.id]);
    expect((await read(both, `&targetId=${device}`)).map((e) => e.kind)).toEqual(['device.update', 'device.create']);
  });
});

describe(`audit entries written before entries carried their groups (${TEST_DIALECT})`, () => {
  it('take the groups their targets are in now; entries about no device stay for unscoped administrators', async () => {
    const database = await createTestDatabase();
    const store = openStore(database.location);
    try {
      await migrate(store, { through: 14 });
      const ids = { g1: '00000000-0000-7000-8000-000000000001', g2: '00000000-0000-7000-8000-000000000002', d1: '00000000-0000-7000-8000-000000000011', d2: '00000000-0000-7000-8000-000000000012' };
      await sql`INSERT INTO device_groups (id, name, rank, automation_level, created_at) VALUES (${ids.g1}, 'one', 1, 'full', 0), (${ids.g2}, 'two', 2, 'full', 0)`.execute(store.db);
      await sql`INSERT INTO devices (id, name, platform, group_id, created_at) VALUES (${ids.d1}, 'one-host', 'linux', ${ids.g1}, 0), (${ids.d2}, 'loose-host', 'linux', NULL, 0)`.execute(store.db);
      await sql`INSERT INTO actions (id, type, status, entity_type, entity_name, parameters, device_id, device_name, group_id, source, requested_by, requested_at, updated_at)
        VALUES ('act-1', 'isolate_device', 'queued', 'device', 'one-host', '{}', ${ids.d1}, 'one-host', ${ids.g1}, 'manual', 'ann', 0, 0)`.execute(store.db);
      await sql`INSERT INTO indicators (id, type, value, action, title, device_group_ids, created_by, created_at, updated_at)
        VALUES ('ind-1', 'domain', 'evil.example', 'block', 'C2', ${JSON.stringify([ids.g1, ids.g2])}, 'ann', 0, 0), ('ind-2', 'domain', 'bad.example', 'block', 'C2', '[]', 'ann', 0, 0)`.execute(store.db);
      await sql`INSERT INTO incidents (id, title, status, severity, first_activity_at, last_activity_at, created_at, updated_at)
        VALUES ('inc-1', 'one group', 'active', 'high', 0, 0, 0, 0), ('inc-2', 'a group and none', 'active', 'high', 0, 0, 0, 0)`.execute(store.db);
      await sql`INSERT INTO alerts (id, title, severity, category, detection_source, device_id, device_name, group_id, occurred_at, received_at, status, updated_at, evidence, incident_id)
        VALUES ('al-1', 'x', 'high', 'malware', 'edr', ${ids.d1}, 'one-host', ${ids.g1}, 0, 0, 'new', 0, '[]', 'inc-1'),
               ('al-2', 'x', 'high', 'malware', 'edr', ${ids.d1}, 'one-host', ${ids.g1}, 0, 0, 'new', 0, '[]', 'inc-2'),
               ('al-3', 'x', 'high', 'malware', 'edr', ${ids.d2}, 'loose-host', NULL, 0, 0, 'new', 0, '[]', 'inc-2')`.execute(store.db);
      const legacy: Array<[string, string, string | null]> = [
        ['action.create', 'action', 'act-1'], ['device.create', 'device', ids.d1], ['device.create', 'device', ids.d2], ['indicator.create', 'indicator', 'ind-1'],
        ['indicator.create', 'indicator', 'ind-2'], ['device_group.create', 'device_group', ids.g2], ['user.create', 'user', 'user-1'], ['agent.command_refused', 'action', null],
        ['alert.create', 'alert', 'al-1'], ['incident.update', 'incident', 'inc-1'], ['incident.update', 'incident', 'inc-2'], ['action.create', 'action', 'act-gone'],
      ];
      for (const [i, [kind, targetType, targetId]] of legacy.entries()) {
        await sql`INSERT INTO audit_log (seq, at, actor, source_ip, kind, target_type, target_id, before_json, after_json, prev_hash, hash)
          VALUES (${i + 1}, 0, 'ann', NULL, ${kind}, ${targetType}, ${targetId}, NULL, NULL, '', '')`.execute(store.db);
      }
      expect(await migrate(store)).toContain(15);
      const rows = await store.db.selectFrom('audit_log').select(['seq', 'group_ids', 'actor_user_id']).orderBy('seq').execute();
      expect(rows.map((r) => (r.group_ids === null ? null : JSON.parse(r.group_ids)))).toEqual([
        [ids.g1], [ids.g1], [], [ids.g1, ids.g2], [], [ids.g2], null, [], [ids.g1], [ids.g1], [], [],
      ]);
      expect(rows.every((r) => r.actor_user_id === null)).toBe(true);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
