import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EvidenceReportSchema } from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import { systemActor } from '@quell/server';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { type Fleet, startFleet } from './simulator.ts';
import { QUELL, waitFor } from './test/helper.ts';

const exec = promisify(execFile);

describe(`fleet simulator (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  let fleet: Fleet | undefined;
  const others: Fleet[] = [];
  const stateRoot = mkdtempSync(join(tmpdir(), 'quell-simulate-'));
  afterAll(async () => {
    await fleet?.close();
    for (const other of others) await other.close();
    rmSync(stateRoot, { recursive: true, force: true });
  });
  const token = async (uses: number) => (await ctx().services.agents.createEnrolmentToken(systemActor(), { name: `sim-${uses}`, uses, expiresInDays: 1 })).secret;
  const deviceCount = async () => (await ctx().request(ctx().users.security_reader, 'GET', '/api/devices?limit=500')).json().items.length as number;

  it('enrols and connects N agents that carry out a bulk-approved action each, exactly once', async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'sim', uses: 25, expiresInDays: 1 });
    const progress: string[] = [];
    fleet = await startFleet({ serverUrl: ctx().url, token: secret, agents: 25, concurrency: 10, onProgress: (phase, done) => progress.push(`${phase}:${done}`) });
    expect(fleet.connectedCount()).toBe(25);
    expect(progress).toContain('connecting:25');
    const devices = (await ctx().request(ctx().users.security_reader, 'GET', '/api/devices')).json().items;
    expect(devices.filter((d: { health: string }) => d.health === 'online')).toHaveLength(25);

    const ids: string[] = [];
    for (const agent of fleet.agents) ids.push(await ctx().createAction({ deviceId: agent.deviceId, type: 'collect_investigation_package' }));
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/approve', { ids })).statusCode).toBe(200);
    await waitFor('every simulated agent to report', async () => {
      const page = (await ctx().request(ctx().users.security_reader, 'GET', '/api/actions?view=history&status=completed&type=collect_investigation_package&limit=100')).json();
      return page.items.length === 25 ? true : undefined;
    });
    for (const agent of fleet.agents) expect(agent.executed.map((e) => e.type)).toEqual(['collect_investigation_package']);
    // Each uploaded its package, signed, as the real agent does.
    const download = await ctx().app.inject({ method: 'GET', url: `/api/actions/${ids[0]}/package`, headers: ctx().as(ctx().users.security_operator) });
    expect(download.statusCode).toBe(200);
    expect(execFileSync('tar', ['-tzf', '-'], { input: download.rawPayload }).toString()).toContain('./processes.txt');
  });

  it('fans a containment out to every connected agent and completes once all of them applied it', async () => {
    const printer = await ctx().createDevice({ name: 'printer' });
    const id = await ctx().createAction({ type: 'contain_device', deviceId: printer, entity: { name: '198.51.100.7' }, status: 'queued' });
    const done = await waitFor('the containment to complete', async () => {
      const detail = (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${id}`)).json();
      return detail.action.status === 'completed' ? detail : undefined;
    });
    expect(done.enforcement).toEqual({ succeeded: 25, failed: 0, waiting: 0, waitingOnline: 0, failures: [] });
    expect(done.action.result.output).toBe('Contained 198.51.100.7 on 25 of 25 managed devices');
    for (const agent of fleet!.agents) expect(agent.state?.contained).toEqual(['198.51.100.7']);
  });

  it('refuses to enrol more agents than the token allows', async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'small', uses: 2, expiresInDays: 1 });
    await expect(startFleet({ serverUrl: ctx().url, token: secret, agents: 3, concurrency: 1 })).rejects.toThrow(/^The enrolment token is used up: every one of its uses has enrolled an agent: 2 of 3 simulated agents are enrolled$/);
  });

  it('keeps its agents in its state folder: started again, the same devices come back, without a token and without new devices', async () => {
    const stateDir = join(stateRoot, 'kept');
    const first = await startFleet({ serverUrl: ctx().url, token: await token(2), agents: 2, stateDir });
    const ids = first.agents.map((a) => a.deviceId);
    expect(first.enrolled).toBe(2);
    await first.close();
    const devices = await deviceCount();

    const again = await startFleet({ serverUrl: ctx().url, agents: 2, stateDir });
    others.push(again);
    expect(again.agents.map((a) => a.deviceId)).toEqual(ids);
    expect(again.enrolled).toBe(0);
    expect(again.connectedCount()).toBe(2);
    expect(await deviceCount()).toBe(devices);

    await expect(startFleet({ serverUrl: ctx().url, agents: 3, stateDir })).rejects.toThrow('1 of 3 simulated agents are not enrolled yet: give an enrolment token with 1 uses (quell token create --enrolment --uses 1)');
    await expect(startFleet({ serverUrl: 'http://192.0.2.1:8080', agents: 2, stateDir })).rejects.toThrow(`${stateDir} holds simulated agents of ${ctx().url}, not of http://192.0.2.1:8080: choose another state folder`);
  });

  it('says in one line, without a stack trace, that the enrolment token is used up, and enrols only the rest with the next one', async () => {
    const stateDir = join(stateRoot, 'cli');
    const spent = await token(1);
    const simulate = async (secret: string) => exec(process.execPath, [QUELL, 'simulate', '--server', ctx().url, '--token', secret, '--agents', '3', '--state-dir', stateDir], { timeout: 30_000 })
      .then(() => ({ code: 0, stderr: '' }), (error: { code: number; stderr: string }) => error);
    const refused = await simulate(spent);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`quell: The enrolment token is used up: every one of its uses has enrolled an agent: 1 of 3 simulated agents are enrolled (kept in ${stateDir}: run again with a new token to enrol the rest)\n`);

    const devices = await deviceCount();
    const rest = await startFleet({ serverUrl: ctx().url, token: await token(2), agents: 3, stateDir });
    others.push(rest);
    expect(rest.enrolled).toBe(2);
    expect(await deviceCount()).toBe(devices + 2);
  });

  it('lets a newcomer watch an automated investigation propose, wait, remediate and finish, with evidence of the real agent\'s shape', async () => {
    const demo = await startFleet({ serverUrl: ctx().url, token: await token(1), agents: 1, stateDir: join(stateRoot, 'demo') });
    others.push(demo);
    const [agent] = demo.agents;
    const group = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'demo (semi)', rank: 1, automationLevel: 'semi_any_folder' })).id;
    expect((await ctx().request(ctx().users.security_admin, 'PATCH', `/api/devices/${agent!.deviceId}`, { groupId: group })).statusCode).toBe(200);
    const alert = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Process launched from a temp folder', severity: 'high', category: 'execution', detectionSource: 'edr-rules', deviceId: agent!.deviceId,
      occurredAt: new Date().toISOString(), evidence: [{ kind: 'file', path: '/tmp/.x/kworker', sha256: 'd'.repeat(64) }],
    });
    expect(alert.statusCode, alert.body).toBe(201);
    interface Seen {
      investigation: { status: string; problems: unknown[] };
      actions: Array<{ id: string; type: string; status: string; result: { output?: string } | null }>;
      log: Array<{ step: string; result: string }>;
    }
    // The engine as the server's job runs it, one round per look.
    const investigation = (status: string) => waitFor<Seen>(`the investigation to be ${status}`, async () => {
      await ctx().services.investigations.runDue();
      const item = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items.find((i: { deviceId: string }) => i.deviceId === agent!.deviceId);
      return item?.status === status ? (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${item.id}`)).json() : undefined;
    });

    const proposed = await investigation('pending_action');
    const evidence = proposed.actions.find((a) => a.type === 'collect_evidence');
    expect(evidence?.status).toBe('completed');
    expect(checkValue(EvidenceReportSchema, JSON.parse(evidence?.result?.output ?? ''))).toMatchObject({ ok: true });
    expect(proposed.log.map((l) => [l.step, l.result])).toEqual([
      ['collect', '1 new file from 1 alert'],
      ['evidence', 'asked the agent for evidence'],
      ['evidence', 'evidence from the agent: 3 processes and 6 persistence entries looked at, 0 running from temp or download folders'],
      ['verdicts', '1 malicious, 0 suspicious, 0 with no threats found. /tmp/.x/kworker: malicious (high-severity detection of a file in a temp or download folder)'],
      ['expand', 'not found on other devices'],
      ['remediate', '1 action proposed (0 automatic, 1 pending approval)'],
      ['wait', 'waiting for analysts to decide pending actions'],
    ]);
    expect(proposed.investigation.problems).toEqual([]);
    const quarantine = proposed.actions.find((a) => a.type === 'quarantine_file')!;
    expect(quarantine).toMatchObject({ status: 'pending_approval', entity: { path: '/tmp/.x/kworker' } });

    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/approve', { ids: [quarantine.id], comment: 'go ahead' })).statusCode).toBe(200);
    const finished = await investigation('remediated');
    expect(finished.actions.find((a) => a.id === quarantine.id)).toMatchObject({ status: 'completed', result: { output: `Quarantined /tmp/.x/kworker (SHA-256 ${'d'.repeat(64)}) into the vault` } });
    expect(finished.log.at(-1)?.result).toBe('remediated: 1 of 1 threat remediated');
    expect(agent!.executed.map((e) => e.type)).toEqual(['collect_evidence', 'quarantine_file']);
  });
});
