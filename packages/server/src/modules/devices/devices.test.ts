import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

describe(`device state (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const state = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${id}`)).json().state;

  it('says what is in force: isolation and restriction until their undo completes, and each contained user', async () => {
    const deviceId = await ctx().createDevice();
    expect(await state(deviceId)).toEqual({ isolatedBy: null, codeRestrictedBy: null, containedUsers: [], releasing: [], containment: [] });
    const isolate = await ctx().createAction({ deviceId, type: 'isolate_device', entity: { name: 'device' }, status: 'queued' });
    const restrict = await ctx().createAction({ deviceId, type: 'restrict_code_execution', entity: { name: 'device' }, status: 'queued' });
    const contain = await ctx().createAction({ deviceId, type: 'contain_user', entity: { name: 'mallory' }, status: 'queued' });
    expect((await state(deviceId)).isolatedBy).toBeNull();
    for (const id of [isolate, restrict, contain]) await ctx().complete(id);
    expect(await state(deviceId)).toEqual({ isolatedBy: isolate, codeRestrictedBy: restrict, containedUsers: [{ name: 'mallory', actionId: contain }], releasing: [], containment: [] });

    const [release] = await ctx().services.actions.undo(ctx().users.security_operator.actor, { ids: [isolate] });
    expect((await state(deviceId)).isolatedBy).toBe(isolate);
    expect((await state(deviceId)).releasing).toEqual([isolate]);
    await ctx().complete(release!.id);
    expect((await state(deviceId)).isolatedBy).toBeNull();
    expect((await state(deviceId)).releasing).toEqual([]);
    const listed = (await ctx().request(ctx().users.security_reader, 'GET', '/api/devices')).json().items.find((d: { id: string }) => d.id === deviceId);
    expect(listed.state).toEqual({ isolatedBy: null, codeRestrictedBy: restrict, containedUsers: [{ name: 'mallory', actionId: contain }], releasing: [], containment: [] });
  });

  it('says which addresses of a device without an agent are contained, from approval until their release is asked for', async () => {
    const deviceId = await ctx().createDevice();
    // Waiting for approval: not enforced yet.
    await ctx().createAction({ deviceId, type: 'contain_device', entity: { name: '10.1.2.3' } });
    expect((await state(deviceId)).containment).toEqual([]);
    const contain = await ctx().createAction({ deviceId, type: 'contain_device', entity: { name: '10.1.2.4' }, status: 'queued' });
    expect((await state(deviceId)).containment).toEqual([{ address: '10.1.2.4', actionId: contain }]);
    await ctx().complete(contain);
    expect((await state(deviceId)).containment).toEqual([{ address: '10.1.2.4', actionId: contain }]);
    await ctx().services.actions.undo(ctx().users.security_operator.actor, { ids: [contain] });
    expect((await state(deviceId)).containment).toEqual([]);
  });
});
