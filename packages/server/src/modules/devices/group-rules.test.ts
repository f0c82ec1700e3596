import { generateKeyPairSync } from 'node:crypto';
import type { Ed25519PublicJwk } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

describe(`device groups by rule (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const admin = () => ctx().users.security_admin;
  const groupOf = async (id: string) => (await ctx().request(admin(), 'GET', `/api/devices/${id}`)).json().groupId;

  it('puts a device in the highest-ranked group whose rule matches, at creation and at enrolment; by hand it stays put', async () => {
    const web = (await ctx().request(admin(), 'POST', '/api/device-groups', { name: 'web servers', rank: 10, automationLevel: 'full', rule: { namePattern: 'web-*', platform: 'linux' } })).json();
    const all = (await ctx().request(admin(), 'POST', '/api/device-groups', { name: 'all linux', rank: 1, automationLevel: 'semi_any_folder', rule: { platform: 'linux' } })).json();
    expect(web.rule).toEqual({ namePattern: 'web-*', platform: 'linux' });

    const web1 = (await ctx().request(admin(), 'POST', '/api/devices', { name: 'WEB-01', platform: 'linux' })).json();
    const db1 = (await ctx().request(admin(), 'POST', '/api/devices', { name: 'db-01', platform: 'linux' })).json();
    const win = (await ctx().request(admin(), 'POST', '/api/devices', { name: 'web-win', platform: 'windows' })).json();
    expect([web1.groupId, db1.groupId, win.groupId]).toEqual([web.id, all.id, null]);

    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'rules', uses: 1, expiresInDays: 1 });
    const x = (generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x;
    const { deviceId } = await ctx().services.agents.enrol({ token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x }, facts: { hostname: 'web-07', platform: 'linux', os: 't', kernel: 't', ips: [], macs: [], agentVersion: 't' } }, null);
    expect(await groupOf(deviceId)).toBe(web.id);

    // By hand: the rules leave it there, even when they change; null hands it back to them.
    expect((await ctx().request(admin(), 'PATCH', `/api/devices/${db1.id}`, { groupId: web.id })).json().groupId).toBe(web.id);
    expect((await ctx().request(admin(), 'PATCH', `/api/device-groups/${all.id}`, { rank: 20 })).json().rank).toBe(20);
    expect([await groupOf(db1.id), await groupOf(web1.id)]).toEqual([web.id, all.id]);
    expect((await ctx().request(admin(), 'PATCH', `/api/devices/${db1.id}`, { groupId: null })).json().groupId).toBe(all.id);

    // A group without a rule takes devices only by hand: those its rule had placed go where the other rules say.
    expect((await ctx().request(admin(), 'PATCH', `/api/device-groups/${all.id}`, { rule: null })).json().rule).toBeNull();
    expect([await groupOf(web1.id), await groupOf(db1.id)]).toEqual([web.id, null]);
  });

  it('refuses a rule that says nothing, a taken name, and callers without the right', async () => {
    const group = (await ctx().request(admin(), 'POST', '/api/device-groups', { name: 'kiosks', rank: 3, automationLevel: 'full' })).json();
    expect((await ctx().request(admin(), 'PATCH', `/api/device-groups/${group.id}`, { rule: {} })).json().code).toBe('validation_failed');
    expect((await ctx().request(admin(), 'PATCH', `/api/device-groups/${group.id}`, { name: 'web servers' })).json().code).toBe('device_group_name_taken');
    expect((await ctx().request(ctx().users.security_operator, 'PATCH', `/api/device-groups/${group.id}`, { rank: 9 })).statusCode).toBe(403);
  });
});
