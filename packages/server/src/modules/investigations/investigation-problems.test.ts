import { AGENT_PROTOCOL_VERSION } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { enrolTestAgent, signedByAgent } from '../../test/agents.ts';
import { TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';

/**
 * An investigation survives what goes wrong on its way: an agent whose
 * evidence is not an evidence report, a step that cannot run. Each failure
 * is kept on the investigation's summary with its reason, the step is tried
 * again a bounded number of times, and the investigation goes on with what
 * it has.
 */
describe(`problems an investigation survives (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  let n = 0;
  const hash = () => (++n).toString(16).padStart(64, 'c');
  const admin = () => ctx().users.security_admin;
  const run = () => ctx().services.investigations.runDue();
  const detail = async (id: string) => {
    const response = await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json();
  };
  const listed = async (id: string) => ((await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; problems: unknown[] }>).find((i) => i.id === id)!;

  /** Puts a device (by default a new one without an agent) in a group on full automation: its threats are remediated at once. */
  async function fullyAutomated(deviceId?: string): Promise<string> {
    const group = (await ctx().services.devices.createGroup(admin().actor, { name: `full-${++n}`, rank: n, automationLevel: 'full' })).id;
    const id = deviceId ?? await ctx().createDevice();
    expect((await ctx().request(admin(), 'PATCH', `/api/devices/${id}`, { groupId: group })).statusCode).toBe(200);
    return id;
  }
  async function alert(deviceId: string, path: string, sha256 = hash(), severity = 'high'): Promise<string> {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Dropper', severity, category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: '2026-11-01T11:00:00Z', evidence: [{ kind: 'file', path, sha256 }],
    });
    expect(response.statusCode, response.body).toBe(201);
    await run();
    const items = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    return items.find((i) => i.deviceId === deviceId)!.id;
  }

  it('asks a device whose evidence is not a report three times, keeps each reason on the summary, then investigates from the alerts and remediates', async () => {
    const agent = await enrolTestAgent(ctx(), 'garbled');
    await fullyAutomated(agent.deviceId);
    const id = await alert(agent.deviceId, '/tmp/.cache/dropper');
    const answers = [
      'simulated collect_evidence',
      JSON.stringify({ processes: [{ pid: -1, exe: '/tmp/x', sha256: null, commandLine: '' }], persistence: [], files: [], leftOut: 0 }),
      JSON.stringify({ processes: [], persistence: [], files: [], leftOut: 0, padding: 'x'.repeat(70_000) }),
    ];
    for (const [i, output] of answers.entries()) {
      const asked = (await detail(id)).actions.filter((a: { type: string }) => a.type === 'collect_evidence');
      expect(asked.map((a: { status: string }) => a.status)).toEqual([...Array(i).fill('failed'), 'queued']);
      await ctx().services.agents.result(agent.deviceId, signedByAgent(agent.key, { v: AGENT_PROTOCOL_VERSION, deviceId: agent.deviceId, actionId: asked[i].id, outcome: 'completed', output, iat: 0 }));
      ctx().clock.advance(1_500);
      await run();
      const seen = await detail(id);
      expect(seen.investigation.status, seen.log.at(-1)?.result).not.toBe('failed');
      expect(seen.investigation.problems).toHaveLength(i + 1);
    }

    const seen = await detail(id);
    expect(seen.investigation.problems).toEqual([
      { step: 'evidence', at: expect.any(String), reason: expect.stringMatching(/^The agent's answer is not a valid collect evidence report: it is not JSON/) },
      { step: 'evidence', at: expect.any(String), reason: "The agent's answer is not a valid collect evidence report: /processes/0/pid must be >= 0" },
      { step: 'evidence', at: expect.any(String), reason: expect.stringMatching(/more than the 65536 allowed$/) },
    ]);
    expect((await listed(id)).problems).toEqual(seen.investigation.problems);
    expect(seen.log.filter((l: { step: string }) => l.step === 'evidence').map((l: { result: string }) => l.result)).toEqual([
      'asked the agent for evidence',
      expect.stringMatching(/^the evidence could not be used \(attempt 1 of 3\): .*; asked the agent again$/),
      expect.stringMatching(/^the evidence could not be used \(attempt 2 of 3\): .*; asked the agent again$/),
      expect.stringMatching(/^no usable evidence after 3 attempts \(.*\): its alerts are the evidence$/),
    ]);
    const quarantine = seen.actions.find((a: { type: string }) => a.type === 'quarantine_file');
    expect(quarantine).toMatchObject({ status: 'queued', entity: { path: '/tmp/.cache/dropper' } });
    await ctx().complete(quarantine.id);
    ctx().clock.advance(1_500);
    await run();
    expect((await detail(id)).investigation).toMatchObject({ status: 'remediated', problems: seen.investigation.problems });
  });

  it('goes on from the alerts when the device does not answer in time, and says so on the summary', async () => {
    const agent = await enrolTestAgent(ctx(), 'silent');
    const id = await alert(await fullyAutomated(agent.deviceId), '/tmp/quiet');
    expect((await detail(id)).actions.map((a: { type: string; status: string }) => [a.type, a.status])).toEqual([['collect_evidence', 'queued']]);
    ctx().clock.advance(119_000);
    await run();
    expect((await detail(id)).investigation.problems).toEqual([]);
    ctx().clock.advance(2_000);
    await run();
    const seen = await detail(id);
    expect(seen.investigation.problems).toEqual([{ step: 'evidence', at: expect.any(String), reason: 'The device did not answer within 2 minutes' }]);
    expect(seen.log.find((l: { step: string; result: string }) => l.result.startsWith('no evidence'))).toMatchObject({ step: 'evidence', result: 'no evidence from the device (queued): its alerts are the evidence' });
    expect(seen.actions.map((a: { type: string; status: string }) => a.type)).toContain('quarantine_file');
  });

  it('retries a step that cannot run after a pause, then goes on without it where it can', async () => {
    const sha256 = hash();
    const elsewhere = await ctx().createDevice();
    await alert(elsewhere, '/home/dev/stage2', sha256, 'informational');
    // The other device's alert becomes unreadable, as if written by a broken release: following the file there cannot run.
    await ctx().store.db.updateTable('alerts').set({ evidence: '[{"kind": "file", "pa' }).where('device_id', '=', elsewhere).execute();
    const id = await alert(await fullyAutomated(), '/tmp/stage2', sha256);
    let seen = await detail(id);
    expect(seen.investigation.problems.map((p: { step: string }) => p.step)).toEqual(['expand']);
    expect(seen.log.at(-1)).toMatchObject({ step: 'expand', result: expect.stringMatching(/^could not run \(attempt 1 of 3\), trying again: /) });
    await run();
    expect((await detail(id)).investigation.problems).toHaveLength(1); // not before its pause
    ctx().clock.advance(5_000);
    await run();
    ctx().clock.advance(10_000);
    await run();
    seen = await detail(id);
    expect(seen.investigation.problems.map((p: { step: string; reason: string }) => [p.step, p.reason.slice(0, 14)])).toEqual(Array(3).fill(['expand', 'could not run:']));
    // Without following the file elsewhere, the investigation remediates it where it is.
    expect(seen.log.slice(-2)).toEqual([
      expect.objectContaining({ step: 'expand', result: expect.stringMatching(/^could not run 3 times, going on without it: /) }),
      expect.objectContaining({ step: 'remediate', result: '1 action proposed (1 automatic, 0 pending approval)' }),
    ]);
    expect(seen.investigation.status).toBe('running');
    expect(seen.actions.map((a: { type: string; status: string }) => [a.type, a.status])).toEqual([['quarantine_file', 'queued']]);
  });

  it('ends failed, with the reasons on its summary, when a step it cannot do without keeps failing', async () => {
    const deviceId = await fullyAutomated();
    const id = await alert(deviceId, '/tmp/stage3');
    // Its alert's evidence becomes unreadable; gathering the files again (a new alert joins) cannot run.
    const { alert_id: alertId } = await ctx().store.db.selectFrom('investigation_alerts').select('alert_id').where('investigation_id', '=', id).executeTakeFirstOrThrow();
    await ctx().store.db.updateTable('alerts').set({ evidence: 'not json' }).where('id', '=', alertId).execute();
    await ctx().store.db.updateTable('investigations').set({ step: 'collect', run_after: ctx().clock.now() }).where('id', '=', id).execute();
    for (const pause of [0, 5_000, 10_000]) {
      ctx().clock.advance(pause);
      await run();
    }
    const seen = await detail(id);
    expect(seen.investigation.status).toBe('failed');
    expect(seen.investigation.conclusion).toMatch(/^Failed: the collect step could not run 3 times: /);
    expect(seen.investigation.endedAt).not.toBeNull();
    expect(seen.investigation.problems.map((p: { step: string }) => p.step)).toEqual(['collect', 'collect', 'collect']);
    expect(seen.log.at(-1)).toMatchObject({ step: 'error', result: expect.stringMatching(/^failed: /) });

    // Once what stopped it is fixed, an analyst retries it from the step it could not get past; a reader may not.
    const retry = (user = admin()) => ctx().request(user, 'POST', `/api/investigations/${id}/retry`, { comment: 'evidence restored' });
    expect((await retry(ctx().users.security_reader)).statusCode).toBe(403);
    // An administrator of another device group does not see it; a body with more than a comment is refused whole.
    const elsewhere = (await ctx().services.devices.createGroup(admin().actor, { name: `elsewhere-${++n}`, rank: 900 + n, automationLevel: 'full' })).id;
    const outsider = await createUser(ctx().services, 'security_admin', `outsider-${n}`, [elsewhere]);
    expect((await retry(outsider)).json()).toMatchObject({ status: 404, code: 'investigation_not_found' });
    expect((await ctx().request(admin(), 'POST', `/api/investigations/${id}/retry`, { comment: 'x', step: 'remediate' })).statusCode).toBe(400);
    expect((await ctx().request(admin(), 'POST', `/api/investigations/${id}/retry`, { comment: 'x'.repeat(100_000) })).statusCode).toBe(400);
    expect((await detail(id)).investigation.status).toBe('failed');
    await ctx().store.db.updateTable('alerts').set({ evidence: JSON.stringify([{ kind: 'file', path: '/tmp/stage3', sha256: hash() }]) }).where('id', '=', alertId).execute();
    const retried = await retry();
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.json()).toMatchObject({ status: 'running', endedAt: null, conclusion: null });
    // Only a failed investigation: twice in a row, the second finds it running.
    expect((await retry()).json()).toMatchObject({ status: 409, code: 'investigation_not_failed' });
    await run();
    const after = await detail(id);
    expect(after.investigation.status).not.toBe('failed');
    expect(after.log.map((l: { step: string; result: string }) => `${l.step}: ${l.result}`)).toContain('retry: retried by security-admin from the collect step: evidence restored');
    const audited = (await ctx().request(admin(), 'GET', `/api/audit?targetId=${id}`)).json().items as Array<{ kind: string }>;
    expect(audited.map((e) => e.kind)).toContain('investigation.retry');
  });
});
