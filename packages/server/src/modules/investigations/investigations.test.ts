import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { createServices } from '../../services.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/**
 * The investigation engine over the real store: alerts start investigations,
 * verdicts follow indicators and the documented heuristics, the same file is
 * followed to other devices, and the device groups' automation levels decide
 * what is remediated at once and what waits for an analyst.
 */
describe(`automated investigations (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const admin = () => ctx().users.security_admin;
  let n = 0;
  const hash = () => (++n).toString(16).padStart(64, 'b');

  async function group(level: 'full' | 'semi_any_folder' | 'semi_non_temp_folders' | 'none'): Promise<string> {
    return (await ctx().services.devices.createGroup(admin().actor, { name: `${level}-${++n}`, rank: n, automationLevel: level })).id;
  }
  async function alert(deviceId: string, sha256: string, path: string, severity: 'informational' | 'low' | 'medium' | 'high' = 'high'): Promise<string> {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Detection', severity, category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: '2026-11-01T11:00:00Z',
      evidence: [{ kind: 'file', path, sha256 }],
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().id;
  }
  const investigationOf = async (deviceId: string) => {
    const items = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    return items.find((i) => i.deviceId === deviceId)!.id;
  };
  const detail = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`)).json();
  const run = () => ctx().services.investigations.runDue();

  it('remediates at once where the group is on full automation, asks elsewhere, and ends partially remediated when one is rejected', async () => {
    const [full, semi] = [await group('full'), await group('semi_any_folder')];
    const a = await ctx().createDevice({ groupId: full, name: 'web-a' });
    const b = await ctx().createDevice({ groupId: semi, name: 'web-b' });
    const c = await ctx().createDevice({ groupId: semi, name: 'web-c' });
    const sha256 = hash();
    // B and C reported the same file earlier, in alerts that said little: their own investigations find nothing.
    await alert(b, sha256, '/var/tmp/kworker', 'informational');
    await alert(c, sha256, '/home/dev/kworker', 'informational');
    await run();
    expect((await detail(await investigationOf(b))).investigation).toMatchObject({
      status: 'no_threats_found', conclusion: 'No threats found: 1 file looked at, none malicious or suspicious',
    });

    await alert(a, sha256, '/tmp/.x/kworker', 'high');
    await run();
    const id = await investigationOf(a);
    let seen = await detail(id);
    expect(seen.investigation.status).toBe('pending_action');
    expect(seen.entities.map((e: { deviceName: string; verdict: string }) => [e.deviceName, e.verdict])).toEqual([['web-a', 'malicious'], ['web-b', 'malicious'], ['web-c', 'malicious']]);
    expect(seen.log.map((l: { step: string }) => l.step)).toEqual(['collect', 'evidence', 'verdicts', 'expand', 'remediate', 'wait']);
    expect(seen.log[1].result).toBe('no agent on the device: its alerts are the evidence');
    expect(seen.log[3].result).toBe('found on 2 other devices: web-b, web-c');
    const byDevice = new Map(seen.actions.map((x: { deviceId: string; status: string; source: string; id: string }) => [x.deviceId, x]));
    expect(byDevice.get(a)).toMatchObject({ status: 'queued', source: 'automated_investigation', investigationId: id, entity: { path: '/tmp/.x/kworker', sha256 } });
    expect(byDevice.get(b)).toMatchObject({ status: 'pending_approval', entity: { path: '/var/tmp/kworker' } });
    expect(byDevice.get(c)).toMatchObject({ status: 'pending_approval' });

    await ctx().complete((byDevice.get(a) as { id: string }).id);
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/approve', { ids: [(byDevice.get(b) as { id: string }).id], comment: 'confirmed' })).statusCode).toBe(200);
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/reject', { ids: [(byDevice.get(c) as { id: string }).id], comment: 'dev box, expected' })).statusCode).toBe(200);
    ctx().clock.advance(90_000);
    await run();
    expect((await detail(id)).investigation.status).toBe('running');
    await ctx().complete((byDevice.get(b) as { id: string }).id);
    ctx().clock.advance(2000);
    await run();
    seen = await detail(id);
    expect(seen.investigation).toMatchObject({ status: 'partially_remediated', waitingSeconds: 90 });
    expect(seen.investigation.endedAt).not.toBeNull();
    expect(seen.log.at(-1).result).toBe('partially remediated: 2 of 3 threats remediated');
    // Why, without the log: what is left, and why it is.
    expect(seen.investigation.conclusion).toBe('Partially remediated: 2 of 3 threats remediated. Left: web-c: /home/dev/kworker (quarantine file rejected: dev box, expected)');
  });

  it('ends terminated by the system when its only pending action expires without a decision', async () => {
    const semi = await group('semi_any_folder');
    const d = await ctx().createDevice({ groupId: semi });
    await alert(d, hash(), '/tmp/dropper', 'high');
    await run();
    const id = await investigationOf(d);
    expect((await detail(id)).investigation.status).toBe('pending_action');
    ctx().clock.advance(8 * 24 * 3_600_000);
    await ctx().services.actions.expireDue(systemActor());
    await run();
    expect((await detail(id)).investigation).toMatchObject({
      status: 'terminated_by_system', conclusion: expect.stringMatching(/^Terminated by system: 0 of 1 threat remediated, 1 expired without a decision\. Left: .+: \/tmp\/dropper \(.+ expired\)$/),
    });
  });

  it('an allow indicator keeps a file from being remediated; a block indicator makes a quiet file malicious', async () => {
    const full = await group('full');
    const [allowed, blocked] = [hash(), hash()];
    await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: allowed, action: 'allow', title: 'in-house tool' });
    await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: blocked, action: 'block', title: 'known loader' });
    const d1 = await ctx().createDevice({ groupId: full });
    const d2 = await ctx().createDevice({ groupId: full });
    await alert(d1, allowed, '/tmp/tool', 'high');
    await alert(d2, blocked, '/opt/app/loader', 'low');
    await run();
    const first = await detail(await investigationOf(d1));
    expect(first.investigation.status).toBe('no_threats_found');
    expect(first.entities[0]).toMatchObject({ verdict: 'no_threats_found', reason: 'allowed by indicator "in-house tool"', actionId: null });
    expect(first.actions).toEqual([]);
    const second = await detail(await investigationOf(d2));
    expect(second.entities[0]).toMatchObject({ verdict: 'malicious', reason: 'block indicator "known loader"' });
    expect(second.actions[0].status).toBe('queued');
  });

  it('starts no investigation where the group has no automated response, and can be started and terminated by hand', async () => {
    const none = await group('none');
    const d = await ctx().createDevice({ groupId: none });
    await alert(d, hash(), '/tmp/x', 'high');
    await run();
    expect((await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items.some((i: { deviceId: string }) => i.deviceId === d)).toBe(false);

    const semi = await group('semi_any_folder');
    const e = await ctx().createDevice({ groupId: semi });
    await alert(e, hash(), '/tmp/y', 'medium');
    expect((await ctx().request(ctx().users.security_reader, 'POST', '/api/investigations', { deviceId: e })).statusCode).toBe(403);
    const started = await ctx().request(ctx().users.security_operator, 'POST', '/api/investigations', { deviceId: e });
    expect(started.statusCode).toBe(201);
    await run();
    const id = started.json().id;
    const pending = (await detail(id)).actions[0];
    expect(pending).toMatchObject({ status: 'pending_approval', comment: 'suspicious: named by a medium-severity alert' });
    const terminated = await ctx().request(ctx().users.security_operator, 'POST', `/api/investigations/${id}/terminate`, { comment: 'handled by IR' });
    expect(terminated.json().status).toBe('terminated_by_user');
    expect((await ctx().services.actions.get(systemActor(), pending.id)).action.status).toBe('cancelled');
    expect((await ctx().request(ctx().users.security_operator, 'POST', `/api/investigations/${id}/terminate`, {})).json().code).toBe('investigation_ended');
  });

  it('a false positive in one flow: the alert resolved as such, every instance undone, the file allowed from then on', async () => {
    const full = await group('full');
    const [d1, d2] = [await ctx().createDevice({ groupId: full }), await ctx().createDevice({ groupId: full })];
    const sha256 = hash();
    await alert(d2, sha256, '/tmp/build/signer', 'informational');
    await run();
    const alertId = await alert(d1, sha256, '/tmp/signer', 'high');
    await run();
    const { actions } = await detail(await investigationOf(d1));
    expect(actions).toHaveLength(2);
    for (const action of actions) await ctx().complete(action.id);
    await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: sha256, action: 'block', title: 'looked bad' });

    // An operator may not undo a quarantine nor create indicators: nothing of the flow happens.
    const refused = await ctx().request(ctx().users.security_operator, 'POST', `/api/alerts/${alertId}/false-positive`, { undo: 'all_instances', allowIndicator: true });
    expect(refused.statusCode).toBe(403);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts/${alertId}`)).json().classification).toBeNull();

    const flow = await ctx().request(admin(), 'POST', `/api/alerts/${alertId}/false-positive`, { undo: 'all_instances', allowIndicator: true, comment: 'our code signer' });
    expect(flow.statusCode, flow.body).toBe(200);
    const body = flow.json();
    expect(body.alert).toMatchObject({ status: 'resolved', classification: 'false_positive' });
    expect(body.undone.map((u: { type: string; status: string }) => [u.type, u.status])).toEqual([['restore_file', 'queued'], ['restore_file', 'queued']]);
    expect(body.indicators).toEqual([expect.objectContaining({ type: 'sha256', value: sha256, action: 'allow' })]);
    const active = (await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators?type=sha256&value=${sha256}`)).json().items;
    expect(active.map((i: { action: string }) => i.action)).toEqual(['allow']);

    // The next alert about it finds no threat.
    const d3 = await ctx().createDevice({ groupId: full });
    await alert(d3, sha256, '/tmp/signer', 'high');
    await run();
    expect((await detail(await investigationOf(d3))).investigation.status).toBe('no_threats_found');
  });

  it('asks before following its files to ten or more other devices, and follows them once approved', async () => {
    const full = await group('full');
    const sha256 = hash();
    const others: string[] = [];
    for (let i = 0; i < 10; i++) {
      others.push(await ctx().createDevice({ groupId: full, name: `fleet-${i}` }));
      await alert(others[i]!, sha256, `/tmp/fleet-${i}/payload`, 'informational');
    }
    await run();
    const origin = await ctx().createDevice({ groupId: full, name: 'origin' });
    await alert(origin, sha256, '/tmp/payload', 'high');
    await run();
    const id = await investigationOf(origin);
    let seen = await detail(id);
    expect(seen.investigation.status).toBe('pending_action');
    expect(seen.pendingExpansion.devices).toHaveLength(10);
    expect(seen.log.at(-1).result).toBe('the same files are on 10 other devices: following them there waits for an analyst\'s approval');
    expect(seen.actions).toEqual([]);
    expect((await ctx().request(ctx().users.security_reader, 'POST', `/api/investigations/${id}/expansion`, { approve: true })).statusCode).toBe(403);

    ctx().clock.advance(30_000);
    expect((await ctx().request(ctx().users.security_operator, 'POST', `/api/investigations/${id}/expansion`, { approve: true, comment: 'same campaign' })).statusCode).toBe(200);
    expect((await ctx().request(ctx().users.security_operator, 'POST', `/api/investigations/${id}/expansion`, { approve: false })).json().code).toBe('no_pending_expansion');
    await run();
    seen = await detail(id);
    expect(seen.pendingExpansion).toBeNull();
    expect(seen.log.find((l: { step: string }) => l.step === 'expand_decided').result).toMatch(/^expansion approved by security-operator: found on 10 other devices/);
    expect(seen.actions.filter((a: { status: string }) => a.status === 'queued')).toHaveLength(11);
    expect(seen.investigation.waitingSeconds).toBe(30);
  });

  it('resumes after a restart and a crashed holder, and two servers never run a step twice', async () => {
    const full = await group('full');
    const d = await ctx().createDevice({ groupId: full });
    await alert(d, hash(), '/tmp/z', 'high');
    const id = await investigationOf(d);
    // A server took the first step and died holding the lease; then the whole server restarted.
    await ctx().store.db.updateTable('investigations').set({ locked_by: 'crashed:1', locked_until: ctx().clock.now() + 60_000 }).where('id', '=', id).execute();
    await ctx().restart();
    expect(await run()).toBe(0);
    ctx().clock.advance(61_000);
    const other = createServices({ store: ctx().store, clock: ctx().clock, owner: 'other:2' });
    await Promise.all([run(), other.investigations.runDue(), run()]);
    const seen = await detail(id);
    expect(seen.log.filter((l: { step: string }) => l.step === 'remediate')).toHaveLength(1);
    expect(seen.actions).toHaveLength(1);
    expect(seen.entities).toHaveLength(1);
  });
});
