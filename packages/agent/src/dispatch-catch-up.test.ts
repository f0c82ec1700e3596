import { systemActor } from '@quell/server';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { type Fleet, startFleet } from './simulator.ts';
import { waitFor, waitForAction } from './test/helper.ts';

/**
 * The dispatch bus is how an approval on one replica reaches the agents
 * connected to another. Its word can be lost — the replica dies between
 * committing and telling, or its listening connection drops — and then
 * the gateway's catch-up delivers what the word was about.
 */
describe(`what the dispatch bus lost still reaches the agents (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock(), loseDispatches: true, gateway: { catchUpMs: 300 } });
  let fleet: Fleet | undefined;
  afterAll(async () => {
    await fleet?.close();
  });

  it('sends an approved command that no one was told of, once, and it completes', async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'catch-up', uses: 3, expiresInDays: 1 });
    fleet = await startFleet({ serverUrl: ctx().url, token: secret, agents: 3 });
    const ids = await Promise.all(fleet.agents.map((agent) => ctx().createAction({ deviceId: agent.deviceId, type: 'run_antivirus_scan', parameters: { scan: 'quick' } })));
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/approve', { ids })).statusCode).toBe(200);
    for (const id of ids) expect((await waitForAction(ctx(), id)).status).toBe('completed');
    for (const agent of fleet.agents) {
      expect(agent.executed.map((e) => e.type)).toEqual(['run_antivirus_scan']);
      expect(agent.resentAfterResult).toEqual([]);
    }
  });

  it('sends a new containment state that no one was told of to every agent', async () => {
    const printer = await ctx().createDevice({ name: 'printer' });
    const id = await ctx().createAction({ type: 'contain_device', deviceId: printer, entity: { name: '198.51.100.9' }, status: 'queued' });
    await waitFor('every agent to hold the new state', async () => (fleet!.agents.every((a) => a.state?.contained.includes('198.51.100.9')) ? true : undefined));
    expect((await waitForAction(ctx(), id)).status).toBe('completed');
  });
});
