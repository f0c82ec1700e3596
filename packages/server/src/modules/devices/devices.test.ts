import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

describe(`device state (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const state = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${id}`)).json().state;

  it('says what is in force: isolation and restriction until their undo completes, and each contained user', async () => {
    const deviceId = await ctx().createDevice();
    expect(await state(deviceId)).toEqual({ isolatedBy: null, codeRestrictedBy: null, containedUsers: [] });
    const isolate = await ctx().createAction({ deviceId, type: 'isolate_device', entity: { name: 'device' }, status: 'queued' });
    const restrict = await ctx().createAction({ deviceId, type: 'restrict_code_execution', entity: { name: 'device' }, status: 'queued' });
    const contain = await ctx().createAction({ deviceId, type: 'contain_user', entity: { name: 'mallory' }, status: 'queued' });
    expect((await state(deviceId)).isolatedBy).toBeNull();
    for (const id of [isolate, restrict, contain]) await ctx().complete(id);
    expect(await state(deviceId)).toEqual({ isolatedBy: isolate, codeRestrictedBy: restrict, containedUsers: [{ name: 'mallory', actionId: contain }] });

    const [release] = await ctx().services.actions.undo(ctx().users.security_operator.actor, { ids: [isolate] });
    expect((await state(deviceId)).isolatedBy).toBe(isolate);
    await ctx().complete(release!.id);
    expect((await state(deviceId)).isolatedBy).toBeNull();
    const listed = (await ctx().request(ctx().users.security_reader, 'GET', '/api/devices')).json().items.find((d: { id: string }) => d.id === deviceId);
    expect(listed.state).toEqual({ isolatedBy: null, codeRestrictedBy: restrict, containedUsers: [{ name: 'mallory', actionId: contain }] });
  });
});
