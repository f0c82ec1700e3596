import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';

describe(`indicators (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const admin = () => ctx().users.security_admin;
  const HASH = 'C0FFEE'.padEnd(64, '0');
  const count = async () => Number((await ctx().store.db.selectFrom('indicators').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it('creates, lists, changes and expires indicators; values are normalised and an active duplicate is refused', async () => {
    const created = await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: HASH, action: 'block', title: 'Loader seen in IR-4711' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ value: HASH.toLowerCase(), action: 'block', active: true, deviceGroupIds: [], createdBy: 'security-admin' });
    const duplicate = await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: HASH.toLowerCase(), action: 'allow', title: 'again' });
    expect(duplicate.statusCode).toBe(409);
    expect(duplicate.json().code).toBe('indicator_exists');

    const changed = await ctx().request(admin(), 'PATCH', `/api/indicators/${created.json().id}`, { action: 'block_and_remediate' });
    expect(changed.json().action).toBe('block_and_remediate');
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators?type=sha256&value=${HASH}`)).json().items).toHaveLength(1);

    const expired = await ctx().request(admin(), 'DELETE', `/api/indicators/${created.json().id}`);
    expect(expired.json().active).toBe(false);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators?type=sha256&value=${HASH}`)).json().items).toEqual([]);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators?type=sha256&value=${HASH}&includeExpired=true`)).json().items).toHaveLength(1);
    // Expired, it no longer blocks a new one for the same value.
    expect((await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: HASH, action: 'audit', title: 'watch it' })).statusCode).toBe(201);
  });

  it('a user scoped to device groups sees the indicators for every group and for theirs, naming only their groups, in the list and the CSV', async () => {
    const group = async (name: string) => (await ctx().services.devices.createGroup(systemActor(), { name, rank: 50, automationLevel: 'full' })).id;
    const [mine, other] = [await group('indicators-mine'), await group('indicators-other')];
    const create = async (value: string, deviceGroupIds: string[]) =>
      (await ctx().request(admin(), 'POST', '/api/indicators', { type: 'domain', value, action: 'block', title: value, deviceGroupIds })).json().id as string;
    const everywhere = await create('everywhere.example', []);
    const ours = await create('ours.example', [mine]);
    const shared = await create('shared.example', [mine, other]);
    const theirs = await create('theirs.example', [other]);
    const scoped = await createUser(ctx().services, 'security_reader', 'indicators-scoped', [mine]);
    const seen = new Map(((await ctx().request(scoped, 'GET', '/api/indicators?type=domain')).json().items as Array<{ id: string; deviceGroupIds: string[] }>).map((i) => [i.id, i.deviceGroupIds]));
    expect(seen.get(everywhere)).toEqual([]);
    expect(seen.get(ours)).toEqual([mine]);
    expect(seen.get(shared)).toEqual([mine]);
    expect(seen.has(theirs)).toBe(false);
    const csv = (await ctx().request(scoped, 'GET', '/api/indicators/export.csv')).body;
    expect(csv).toContain('shared.example');
    expect(csv).not.toContain('theirs.example');
    expect(csv).not.toContain(other);
    expect((await ctx().request(admin(), 'GET', '/api/indicators?type=domain')).json().items.find((i: { id: string }) => i.id === shared).deviceGroupIds).toEqual([mine, other]);
  });

  it('refuses values that are not of their type, unknown groups, past expiry and callers without the right', async () => {
    const before = await count();
    for (const [type, value] of [['sha256', 'abc'], ['md5', 'g'.repeat(32)], ['ip', '10.0.0.300'], ['url', 'javascript:alert(1)'], ['domain', 'not a domain'], ['certificate', '12:34']]) {
      const response = await ctx().request(admin(), 'POST', '/api/indicators', { type, value, action: 'block', title: 't' });
      expect(response.statusCode, `${type} ${value}`).toBe(400);
      expect(response.json().code).toBe('validation_failed');
    }
    const unknownGroup = await ctx().request(admin(), 'POST', '/api/indicators', { type: 'ip', value: '203.0.113.5', action: 'block', title: 't', deviceGroupIds: ['01900000-0000-7000-8000-000000000000'] });
    expect(unknownGroup.json().code).toBe('device_group_not_found');
    const past = await ctx().request(admin(), 'POST', '/api/indicators', { type: 'ip', value: '203.0.113.5', action: 'block', title: 't', expiresAt: '2020-01-01T00:00:00Z' });
    expect(past.json().code).toBe('validation_failed');
    const operator = await ctx().request(ctx().users.security_operator, 'POST', '/api/indicators', { type: 'ip', value: '203.0.113.5', action: 'block', title: 't' });
    expect(operator.statusCode).toBe(403);
    expect(await count()).toBe(before);
  });

  it('imports CSV all or nothing, naming the bad line, and exports what import reads (formula cells defused)', async () => {
    const before = await count();
    const bad = 'type,value,action,title\r\nip,198.51.100.1,block,c2\r\nmd5,nothex,block,bad\r\n';
    const refused = await ctx().app.inject({ method: 'POST', url: '/api/indicators/import.csv', headers: { ...ctx().as(admin()), 'content-type': 'text/csv' }, payload: bad });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().detail).toMatch(/^Line 3: a md5 indicator is 32 hex digits/);
    expect(await count()).toBe(before);

    const good = 'type,value,action,title,description\r\nip,198.51.100.1,block,c2 server,"from ""TI"" feed, high"\r\ndomain,Evil.Example.COM,block,=HYPERLINK("x"),\r\n';
    const imported = await ctx().app.inject({ method: 'POST', url: '/api/indicators/import.csv', headers: { ...ctx().as(admin()), 'content-type': 'text/csv' }, payload: good });
    expect(imported.statusCode).toBe(201);
    expect(imported.json().items.map((i: { value: string; description: string | null }) => [i.value, i.description])).toEqual([['198.51.100.1', 'from "TI" feed, high'], ['evil.example.com', null]]);

    const exported = await ctx().app.inject({ method: 'GET', url: '/api/indicators/export.csv', headers: ctx().as(ctx().users.security_reader) });
    expect(exported.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(exported.body).toContain(`domain,evil.example.com,block,"'=HYPERLINK(""x"")",,,`);
    // What export writes, import reads back: expire everything, then import the export.
    for (const item of (await ctx().request(admin(), 'GET', '/api/indicators')).json().items) await ctx().request(admin(), 'DELETE', `/api/indicators/${item.id}`);
    const again = await ctx().app.inject({ method: 'POST', url: '/api/indicators/import.csv', headers: { ...ctx().as(admin()), 'content-type': 'text/csv' }, payload: exported.body });
    expect(again.statusCode).toBe(201);
    expect(again.json().items.find((i: { type: string }) => i.type === 'domain').title).toBe('=HYPERLINK("x")');
  });

  it('an allow indicator keeps its file from being quarantined or approved, in the groups it covers', async () => {
    const group = (await ctx().services.devices.createGroup(admin().actor, { name: 'build servers', rank: 1, automationLevel: 'full' })).id;
    const builder = await ctx().createDevice({ groupId: group });
    const other = await ctx().createDevice();
    const file = { name: 'signer.exe', path: '/opt/ci/signer.exe', sha256: 'ab'.repeat(32) };
    const pending = await ctx().createAction({ type: 'quarantine_file', deviceId: builder, entity: file });
    const allow = await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: file.sha256, action: 'allow', title: 'our code signer', deviceGroupIds: [group] });
    expect(allow.statusCode).toBe(201);

    const proposed = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'quarantine_file', deviceId: builder, source: 'manual', entity: file });
    expect(proposed.statusCode).toBe(409);
    expect(proposed.json().code).toBe('entity_allowed');
    expect(proposed.json().detail).toContain('our code signer');
    const approved = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/approve', { ids: [pending] });
    expect(approved.json().code).toBe('entity_allowed');
    expect((await ctx().services.actions.get(admin().actor, pending)).action.status).toBe('pending_approval');
    // Outside its groups it protects nothing.
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'quarantine_file', deviceId: other, source: 'manual', entity: file })).statusCode).toBe(201);
  });
});
