import { AGENT_MAX_FRAME_BYTES, type CommandPayload } from '@quell/contracts';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { realisticAnswer } from './simulated-answers.ts';
import { type Fleet, type SimulatedAnswer, startFleet } from './simulator.ts';
import { waitFor, waitForAction } from './test/helper.ts';

type Hostility = 'plain text' | 'JSON of the wrong shape' | 'a report too long to keep whole' | 'more than a frame';

/** What each hostile agent answers when asked for evidence; everything else it answers as a real agent would. */
const EVIDENCE: Record<Hostility, () => string> = {
  'plain text': () => 'simulated collect_evidence',
  'JSON of the wrong shape': () => JSON.stringify({ processes: [{ pid: 'one', exe: 7 }], persistence: {}, files: null }),
  'a report too long to keep whole': () => JSON.stringify({ processes: [], persistence: [], files: [], leftOut: 0, padding: 'x'.repeat(120_000) }),
  'more than a frame': () => 'x'.repeat(AGENT_MAX_FRAME_BYTES + 1024),
};
const HOSTILITIES = Object.keys(EVIDENCE) as Hostility[];

/**
 * Agents that answer evidence requests with garbage, over the real channel
 * (enrolled, connected, their results signed), while a well-behaved agent
 * works beside them. None of them fails an investigation: each bad answer
 * is a problem on the investigation's summary, the investigation goes on
 * from its alerts and remediates, and the rest of the server carries on.
 */
describe(`a broken or hostile agent cannot break an investigation (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  let fleet: Fleet;
  let engine: NodeJS.Timeout;
  const devices = {} as Record<Hostility | 'well-behaved', string>;

  beforeAll(async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'hostile', uses: 5, expiresInDays: 1 });
    const hostile = new Map<string, Hostility>();
    fleet = await startFleet({
      serverUrl: ctx().url, token: secret, agents: 5,
      answer: async (command: CommandPayload, agent, upload): Promise<SimulatedAnswer> => {
        const hostility = hostile.get(agent.deviceId);
        if (!hostility || command.type !== 'collect_evidence') return realisticAnswer(command, agent, upload);
        // Evidence takes a real agent a while to collect: its other answers (a quarantine) go out before it.
        await new Promise((resolve) => setTimeout(resolve, 200));
        return { outcome: 'completed', output: EVIDENCE[hostility]() };
      },
    });
    const group = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'servers (full)', rank: 1, automationLevel: 'full' })).id;
    for (const [i, name] of [...HOSTILITIES, 'well-behaved' as const].entries()) {
      const { deviceId } = fleet.agents[i]!;
      devices[name] = deviceId;
      if (name !== 'well-behaved') hostile.set(deviceId, name);
      expect((await ctx().request(ctx().users.security_admin, 'PATCH', `/api/devices/${deviceId}`, { groupId: group })).statusCode).toBe(200);
    }
    await waitFor('every agent back in its new group', async () => (fleet.connectedCount() === 5 ? true : undefined));
    // The engine as the server's job runs it.
    engine = setInterval(() => void ctx().services.investigations.runDue().catch(() => {}), 200);
  });

  afterAll(async () => {
    clearInterval(engine);
    await fleet?.close();
  });

  async function investigate(name: Hostility): Promise<string> {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Process launched from a temp folder', severity: 'high', category: 'execution', detectionSource: 'edr-rules', deviceId: devices[name],
      occurredAt: new Date().toISOString(), evidence: [{ kind: 'file', path: `/tmp/${name.replaceAll(' ', '-')}/dropper`, sha256: 'f'.repeat(63) + HOSTILITIES.indexOf(name) }],
    });
    expect(response.statusCode, response.body).toBe(201);
    return waitFor(`an investigation on the agent answering ${name}`, async () => {
      const items = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
      return items.find((i) => i.deviceId === devices[name])?.id;
    });
  }
  const detail = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`)).json();
  const ended = (id: string, timeoutMs = 20_000) => waitFor(`investigation ${id} to end`, async () => {
    const seen = await detail(id);
    return seen.investigation.endedAt ? seen : undefined;
  }, timeoutMs);

  it.each(['plain text', 'JSON of the wrong shape', 'a report too long to keep whole'] as const)('an agent answering evidence with %s: three attempts, each a problem on the summary, then remediated from the alerts', async (name) => {
    const seen = await ended(await investigate(name));
    expect(seen.investigation.status).toBe('remediated');
    expect(seen.investigation.problems).toHaveLength(3);
    for (const problem of seen.investigation.problems) expect(problem).toMatchObject({ step: 'evidence', reason: expect.stringMatching(/^The agent's answer is not a valid collect evidence report: /) });
    const asked = seen.actions.filter((a: { type: string }) => a.type === 'collect_evidence');
    expect(asked.map((a: { status: string }) => a.status)).toEqual(['failed', 'failed', 'failed']);
    expect(seen.actions.find((a: { type: string }) => a.type === 'quarantine_file')).toMatchObject({ status: 'completed' });
    expect(seen.log.some((l: { step: string }) => l.step === 'error')).toBe(false);
  });

  it('an agent answering evidence with more than a frame: the investigation waits its while and goes on from the alerts, and the server carries on', async () => {
    const id = await investigate('more than a frame');
    const evidence = await waitFor('the evidence request to reach the agent', async () => (await detail(id)).actions.find((a: { type: string; status: string }) => a.type === 'collect_evidence' && a.status === 'in_progress'));

    // Meanwhile the well-behaved agent's work goes on as usual.
    const scan = await ctx().createAction({ type: 'run_antivirus_scan', deviceId: devices['well-behaved'], status: 'queued', entity: { name: 'device' } });
    expect(await waitForAction(ctx(), scan)).toMatchObject({ status: 'completed' });
    expect((await ctx().app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    ctx().clock.advance(2 * 60_000);
    const seen = await ended(id);
    expect(seen.investigation.status).toBe('remediated');
    expect(seen.investigation.problems).toEqual([{ step: 'evidence', at: expect.any(String), reason: 'The device did not answer within 2 minutes' }]);
    expect(seen.actions.find((a: { id: string }) => a.id === evidence.id)).toMatchObject({ status: 'in_progress' });
  });
});
