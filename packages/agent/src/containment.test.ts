import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { type Endpoint, type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type AgentProcess, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

/**
 * Containment observed from outside: an unmanaged host in its own network
 * namespace, managed endpoints running the real agent, and TCP probes. Every
 * managed endpoint drops the contained host, including one enrolled after
 * the containment was decided, until it is released.
 */
describe(`containment of an unmanaged device by every agent, in network namespaces (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  let first: Endpoint;
  let second: Endpoint;
  let late: Endpoint;
  let intruder: Endpoint;
  const agents = new Map<string, AgentProcess>();
  let intruderDevice: string;
  const work = mkdtempSync(join(tmpdir(), 'quell-containment-'));

  async function enrolAndRun(endpoint: Endpoint): Promise<void> {
    const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name: endpoint.ns, uses: 1, expiresInDays: 1 });
    await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', join(work, endpoint.ns)], endpoint.ns);
    agents.set(endpoint.ns, spawnAgent(join(work, endpoint.ns), endpoint.ns, { bundle: true }));
  }

  beforeAll(async () => {
    lab = await createNetnsLab();
    first = await lab.endpoint('one');
    second = await lab.endpoint('two');
    late = await lab.endpoint('late');
    intruder = await lab.endpoint('bad');
    ctx = await setupTestApp({ listen: { host: first.gateway }, clock: liveClock() });
    for (const endpoint of [first, second, late, intruder]) await lab.listen(endpoint.ns, endpoint.address, 7000);
    await enrolAndRun(first);
    await enrolAndRun(second);
    intruderDevice = await ctx.createDevice({ name: 'unmanaged printer' });
  });

  afterAll(async () => {
    for (const agent of agents.values()) await agent.stop();
    if (process.env.QUELL_TEST_VERBOSE) for (const agent of agents.values()) process.stdout.write(agent.log());
    await ctx?.close();
    await lab?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const reaches = (from: Endpoint, to: Endpoint) => lab.canConnect(from.ns, to.address, 7000);
  const detail = async (id: string) => (await ctx.request(ctx.users.security_reader, 'GET', `/api/actions/${id}`)).json();

  it('approved through the API, every agent drops the contained host, one enrolled later too; undo releases it everywhere', async () => {
    for (const endpoint of [first, second, late]) {
      expect(await reaches(endpoint, intruder)).toBe(true);
      expect(await reaches(intruder, endpoint)).toBe(true);
    }
    const proposed = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'contain_device', deviceId: intruderDevice, source: 'automated_investigation', status: 'pending_approval', entity: { name: intruder.address },
    });
    expect(proposed.statusCode).toBe(201);
    expect((await ctx.request(ctx.users.security_admin, 'POST', '/api/actions/approve', { ids: [proposed.json().id], comment: 'lateral movement' })).statusCode).toBe(200);
    const contained = await waitForAction(ctx, proposed.json().id);
    expect(contained.status, JSON.stringify(contained.result)).toBe('completed');
    expect(contained.result?.output).toBe(`Contained ${intruder.address} on 2 of 2 managed devices`);

    for (const endpoint of [first, second]) {
      expect(await reaches(endpoint, intruder)).toBe(false);
      expect(await reaches(intruder, endpoint)).toBe(false);
    }
    // Only the contained host is cut off: the managed endpoints still reach each other and the server.
    expect(await reaches(first, second)).toBe(true);
    expect(await lab.canConnect(second.ns, first.gateway, Number(new URL(ctx.url).port))).toBe(true);
    // An endpoint not yet enrolled is not protected...
    expect(await reaches(late, intruder)).toBe(true);

    // ...until its agent enrols: the server sends the containment in force on its first connection.
    await enrolAndRun(late);
    await waitFor('the late agent to enforce the containment', async () => ((await detail(contained.id)).enforcement.succeeded === 3 ? true : undefined));
    expect(await reaches(late, intruder)).toBe(false);
    expect(await reaches(intruder, late)).toBe(false);

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [contained.id], comment: 'printer reimaged' });
    expect(undo.statusCode).toBe(200);
    const released = await waitForAction(ctx, undo.json().items[0].id);
    expect(released.status, JSON.stringify(released.result)).toBe('completed');
    expect(released.result?.output).toBe(`Released ${intruder.address} on 3 of 3 managed devices`);
    expect((await detail(contained.id)).action.status).toBe('undone');
    for (const endpoint of [first, second, late]) {
      expect(await reaches(endpoint, intruder)).toBe(true);
      expect(await reaches(intruder, endpoint)).toBe(true);
    }
  });

  it('containment is desired state: after a reboot empties the firewall, the agent enforces it again before it reconnects', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'contain_device', deviceId: intruderDevice, source: 'manual', entity: { name: intruder.address },
    });
    const contained = await waitForAction(ctx, created.json().id);
    expect(contained.status, JSON.stringify(contained.result)).toBe('completed');
    await agents.get(second.ns)!.stop();
    execFileSync('ip', ['netns', 'exec', second.ns, 'nft', 'flush', 'ruleset']);
    expect(await reaches(second, intruder)).toBe(true);
    // Before it even connects, the stored signed state puts the rules back.
    const restarted = spawnAgent(join(work, second.ns), second.ns, { bundle: true });
    agents.set(second.ns, restarted);
    await waitFor('the containment to be re-applied', async () => (restarted.log().includes('containment state re-applied') ? true : undefined));
    expect(await reaches(second, intruder)).toBe(false);

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [contained.id] });
    expect((await waitForAction(ctx, undo.json().items[0].id)).status).toBe('completed');
    expect(await reaches(second, intruder)).toBe(true);
  });

  it('containment lifted on one agent while it runs is put back within seconds and counted on the action for that device', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'contain_device', deviceId: intruderDevice, source: 'manual', entity: { name: intruder.address },
    });
    const contained = await waitForAction(ctx, created.json().id);
    expect(contained.status, JSON.stringify(contained.result)).toBe('completed');
    expect(await reaches(first, intruder)).toBe(false);

    execFileSync('ip', ['netns', 'exec', first.ns, 'nft', 'flush', 'ruleset']);
    const drift = await waitFor('the drift to be reported', async () => (await detail(contained.id)).drift.find((d: { count: number }) => d.count === 1));
    expect(drift).toMatchObject({ deviceName: expect.any(String), repaired: true, detail: expect.stringMatching(/containment rules were gone/) });
    expect(await reaches(first, intruder)).toBe(false);
    // The other agent was not touched and reports nothing.
    expect((await detail(contained.id)).drift).toHaveLength(1);

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [contained.id] });
    expect((await waitForAction(ctx, undo.json().items[0].id)).status).toBe('completed');
    expect(await reaches(first, intruder)).toBe(true);
  });

  it('no agent contains the Quell server: such a containment fails on every device, with the reason, and is withdrawn', async () => {
    const server = await ctx.createDevice({ name: 'looks like the server' });
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'contain_device', deviceId: server, source: 'manual', entity: { name: first.gateway },
    });
    const failed = await waitForAction(ctx, created.json().id);
    const { enforcement } = await detail(failed.id);
    expect(failed.status, JSON.stringify({ failed, enforcement })).toBe('failed');
    expect(failed.result?.error).toMatch(new RegExp(`^Contained ${first.gateway.replaceAll('.', '\\.')} on 0 of 3 managed devices; 3 could not \\(.*is the Quell server`));
    expect(enforcement).toMatchObject({ succeeded: 0, failed: 3, waiting: 0 });
    expect(enforcement.failures[0].reason).toContain('containing it would cut this agent off');
    for (const endpoint of [first, second, late]) expect(await lab.canConnect(endpoint.ns, first.gateway, Number(new URL(ctx.url).port))).toBe(true);
  });

  it('refuses to contain a managed device, and an entity that is not an IP address', async () => {
    const managed = (await ctx.request(ctx.users.security_reader, 'GET', '/api/devices')).json().items.find((d: { health: string }) => d.health !== 'unmanaged');
    const onManaged = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', { type: 'contain_device', deviceId: managed.id, source: 'manual', entity: { name: first.address } });
    expect(onManaged.statusCode).toBe(400);
    expect(onManaged.json().code).toBe('device_is_managed');
    const notAnIp = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', { type: 'contain_device', deviceId: intruderDevice, source: 'manual', entity: { name: '10.0.0.1; nft flush ruleset' } });
    expect(notAnIp.statusCode).toBe(400);
    expect(notAnIp.json().code).toBe('validation_failed');
  });
});
