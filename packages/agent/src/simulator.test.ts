import { systemActor } from '@quell/server';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '../../server/src/test/helper.ts';
import { type Fleet, startFleet } from './simulator.ts';
import { waitFor } from './test-support.ts';

describe(`fleet simulator (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  let fleet: Fleet | undefined;
  afterAll(async () => fleet?.close());

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
    await expect(startFleet({ serverUrl: ctx().url, token: secret, agents: 3, concurrency: 1 })).rejects.toThrow(/enrolment 2 refused \(401\)/);
  });
});
