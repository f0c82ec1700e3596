import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

describe(`incidents (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  let n = 0;
  async function alert(deviceId: string, evidence: unknown[], severity = 'medium'): Promise<{ id: string; incidentId: string }> {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: `Alert ${++n}`, severity, category: 'execution', detectionSource: 'edr-rules', deviceId, occurredAt: new Date(ctx().clock.now()).toISOString(), evidence,
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json();
  }
  const sha = (i: number) => i.toString(16).padStart(64, 'c');

  it('gathers alerts on one device within a day, and across devices that share a hash; the rest open incidents of their own', async () => {
    const [web, db, lone] = [await ctx().createDevice({ name: 'web' }), await ctx().createDevice({ name: 'db' }), await ctx().createDevice({ name: 'lone' })];
    const first = await alert(web, [{ kind: 'file', path: '/tmp/a', sha256: sha(1) }], 'low');
    ctx().clock.advance(3_600_000);
    const sameDevice = await alert(web, [{ kind: 'user', name: 'deploy' }], 'high');
    const sharedHash = await alert(db, [{ kind: 'file', path: '/var/tmp/b', sha256: sha(1) }]);
    // A user name alone is not evidence enough to tie devices together.
    const sameUser = await alert(lone, [{ kind: 'user', name: 'deploy' }]);
    expect([sameDevice.incidentId, sharedHash.incidentId]).toEqual([first.incidentId, first.incidentId]);
    expect(sameUser.incidentId).not.toBe(first.incidentId);

    const detail = (await ctx().request(ctx().users.security_reader, 'GET', `/api/incidents/${first.incidentId}`)).json();
    expect(detail.incident).toMatchObject({ title: 'Alert 1 on web', severity: 'high', alertCount: 3, deviceCount: 2, status: 'active' });
    expect(detail.devices.map((d: { name: string }) => d.name).sort()).toEqual(['db', 'web']);
    expect(detail.evidence.find((e: { kind: string }) => e.kind === 'sha256')).toEqual({ kind: 'sha256', value: sha(1), deviceIds: [web, db] });

    // A day later on the same device, or once the incident is resolved, a new one starts.
    ctx().clock.advance(25 * 3_600_000);
    expect((await alert(web, [{ kind: 'ip', address: '192.0.2.1' }])).incidentId).not.toBe(first.incidentId);
    expect((await ctx().request(ctx().users.security_operator, 'PATCH', `/api/incidents/${first.incidentId}`, { status: 'resolved' })).json().status).toBe('resolved');
    expect((await alert(db, [{ kind: 'file', path: '/x', sha256: sha(1) }])).incidentId).not.toBe(first.incidentId);
    expect((await ctx().request(ctx().users.security_reader, 'PATCH', `/api/incidents/${first.incidentId}`, { status: 'active' })).statusCode).toBe(403);
  });

  it('shows an incident\'s investigations and their actions, and hides incidents of other device groups', async () => {
    const semi = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'semi', rank: 1, automationLevel: 'semi_any_folder' })).id;
    const device = await ctx().createDevice({ groupId: semi });
    const { incidentId } = await alert(device, [{ kind: 'file', path: '/tmp/dropper', sha256: sha(9) }], 'high');
    await ctx().services.investigations.runDue();
    const detail = (await ctx().request(ctx().users.security_reader, 'GET', `/api/incidents/${incidentId}`)).json();
    expect(detail.investigations).toHaveLength(1);
    expect(detail.actions).toEqual([expect.objectContaining({ status: 'pending_approval', source: 'automated_investigation', investigationId: detail.investigations[0].id })]);
    // What the action remediates, as the investigation judged it.
    const entity = (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${detail.investigations[0].id}`)).json().entities
      .find((e: { actionId: string | null }) => e.actionId === detail.actions[0].id);
    expect(detail.verdicts).toEqual([{ actionId: detail.actions[0].id, verdict: entity.verdict, reason: entity.reason }]);
    expect(['malicious', 'suspicious']).toContain(entity.verdict);

    const other = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'other', rank: 2, automationLevel: 'full' })).id;
    const scoped = { ...ctx().users.security_reader.actor, groupIds: [other] };
    await expect(ctx().services.incidents.get(scoped, incidentId)).rejects.toMatchObject({ code: 'incident_not_found' });
    expect((await ctx().services.incidents.list(scoped)).map((i) => i.id)).not.toContain(incidentId);
  });
});
