import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { type Endpoint, type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type AgentProcess, NO_PERIODIC_CHECK_SECONDS, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

/**
 * Isolation observed from outside: real endpoints in network namespaces, a
 * real agent applying real nftables rules, and TCP probes that do not care
 * which code made the rules.
 */
describe(`isolation of a real endpoint in a network namespace (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  let endpoint: Endpoint;
  let peer: Endpoint;
  let agent: AgentProcess;
  let deviceId: string;
  const work = mkdtempSync(join(tmpdir(), 'quell-isolation-'));

  beforeAll(async () => {
    lab = await createNetnsLab();
    endpoint = await lab.endpoint('ep');
    peer = await lab.endpoint('peer');
    ctx = await setupTestApp({ listen: { host: endpoint.gateway }, clock: liveClock() });
    await lab.listen(endpoint.ns, endpoint.address, 7000);
    await lab.listen(peer.ns, peer.address, 7000);
    const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name: 'lab', uses: 1, expiresInDays: 1 });
    const out = await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', join(work, 'agent')], endpoint.ns);
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    // The bundled agent, as endpoints run it; every drift below is seen by an event, not by the periodic check.
    agent = spawnAgent(join(work, 'agent'), endpoint.ns, { bundle: true, driftCheckSeconds: NO_PERIODIC_CHECK_SECONDS });
  });

  afterAll(async () => {
    await agent?.stop();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    await ctx?.close();
    await lab?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const settled = (id: string) => waitForAction(ctx, id);
  const serverPort = () => Number(new URL(ctx.url).port);

  it('approved through the API, isolation cuts the endpoint off from its peer but not from the server; undo restores it', async () => {
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    expect(await lab.canConnect(endpoint.ns, peer.address, 7000)).toBe(true);

    const proposed = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'automated_investigation', status: 'pending_approval', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    });
    const approve = await ctx.request(ctx.users.security_admin, 'POST', '/api/actions/approve', { ids: [proposed.json().id], comment: 'ransomware' });
    expect(approve.statusCode).toBe(200);
    const isolated = await settled(proposed.json().id);
    expect(isolated.status, JSON.stringify(isolated.result)).toBe('completed');

    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(false);
    expect(await lab.canConnect(endpoint.ns, peer.address, 7000)).toBe(false);
    expect(await lab.canConnect(endpoint.ns, endpoint.gateway, serverPort())).toBe(true);

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [isolated.id], comment: 'cleaned' });
    const released = await settled(undo.json().items[0].id);
    expect(released.status, JSON.stringify(released.result)).toBe('completed');
    expect((await ctx.services.actions.get(ctx.users.security_reader.actor, isolated.id)).action.status).toBe('undone');

    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    expect(await lab.canConnect(endpoint.ns, peer.address, 7000)).toBe(true);
  });

  it('isolation is desired state: after a reboot empties the firewall, the agent puts it back before anything else', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    });
    const isolated = await settled(created.json().id);
    expect(isolated.status, JSON.stringify(isolated.result)).toBe('completed');
    await agent.stop();
    // A reboot: the kernel's rules are gone while the agent is down.
    execFileSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'flush', 'ruleset']);
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    agent = spawnAgent(join(work, 'agent'), endpoint.ns, { bundle: true, driftCheckSeconds: NO_PERIODIC_CHECK_SECONDS });
    await waitFor('the isolation to be re-applied', async () => (agent.log().includes('re-applied') ? true : undefined));
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(false);
    expect(await lab.canConnect(endpoint.ns, endpoint.gateway, serverPort())).toBe(true);
    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [isolated.id] });
    expect((await settled(undo.json().items[0].id)).status).toBe('completed');
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
  });

  it('on a host of containers, isolation also cuts off those it routes and those on bridges made after it, both ways; release brings them back', async () => {
    const routed = await lab.routedBehind(endpoint, 'routed');
    await lab.listen(routed.ns, routed.address, 7000);
    const routedReachable = async () => ({
      toRouted: await lab.canConnect(null, routed.address, 7000),
      fromRouted: await lab.canConnect(routed.ns, peer.address, 7000),
    });
    expect(await routedReachable()).toEqual({ toRouted: true, fromRouted: true });

    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    });
    const isolated = await settled(created.json().id);
    expect(isolated.status, JSON.stringify(isolated.result)).toBe('completed');
    expect(isolated.result?.output).toMatch(/forwarded traffic \(containers, VMs\) dropped/);
    expect(await routedReachable()).toEqual({ toRouted: false, fromRouted: false });
    expect(await lab.canConnect(endpoint.ns, endpoint.gateway, serverPort())).toBe(true);

    // Containers started on a new bridge while the device is isolated are cut off from each other too.
    const [left, right] = await lab.bridgedBehind(endpoint, ['left', 'right']) as [Endpoint, Endpoint];
    for (const container of [left, right]) await lab.listen(container.ns, container.address, 7000);
    const drift = async () => (await ctx.services.actions.get(ctx.users.security_reader.actor, isolated.id)).drift[0];
    expect(await waitFor('the new bridge to be reported', drift)).toEqual(expect.objectContaining({
      repaired: true, detail: 'a bridge was created after the isolation (a container or VM started): its traffic was not cut off yet',
    }));
    expect(await lab.canConnect(left.ns, right.address, 7000)).toBe(false);

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [isolated.id] });
    expect((await settled(undo.json().items[0].id)).status).toBe('completed');
    expect(await routedReachable()).toEqual({ toRouted: true, fromRouted: true });
    expect(await lab.canConnect(left.ns, right.address, 7000)).toBe(true);

    // With the bridge there from the start, the isolation names it and covers it at once.
    const again = await settled((await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    })).json().id);
    expect(again.result?.output).toMatch(/forwarded and bridged traffic \(containers, VMs\) dropped/);
    expect(await lab.canConnect(left.ns, right.address, 7000)).toBe(false);
    expect((await ctx.services.actions.get(ctx.users.security_reader.actor, again.id)).drift).toEqual([]);
    const release = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [again.id] });
    expect((await settled(release.json().items[0].id)).status).toBe('completed');
    expect(await lab.canConnect(left.ns, right.address, 7000)).toBe(true);
  }, 60_000);

  it('isolation lifted while the agent runs (table deleted, ruleset flushed, a rule added) is put back at once on nftables\' word, counted on the action, and an alert says it happened again', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    });
    const isolated = await settled(created.json().id);
    expect(isolated.status, JSON.stringify(isolated.result)).toBe('completed');
    const nft = (...args: string[]) => execFileSync('ip', ['netns', 'exec', endpoint.ns, 'nft', ...args]);
    const driftCount = async () => (await ctx.services.actions.get(ctx.users.security_reader.actor, isolated.id)).drift[0]?.count ?? 0;
    const tamper = async (how: () => void, count: number): Promise<void> => {
      how();
      await waitFor(`drift ${count} to be reported`, async () => ((await driftCount()) >= count ? true : undefined));
      expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(false);
      expect(await lab.canConnect(endpoint.ns, endpoint.gateway, serverPort())).toBe(true);
    };

    await tamper(() => nft('delete', 'table', 'inet', 'quell_isolation'), 1);
    // What `systemctl reload nftables` does with Debian's default configuration.
    await tamper(() => nft('flush', 'ruleset'), 2);
    await tamper(() => nft('insert', 'rule', 'inet', 'quell_isolation', 'input', 'accept'), 3);
    const { drift } = await ctx.services.actions.get(ctx.users.security_reader.actor, isolated.id);
    expect(drift).toEqual([expect.objectContaining({ deviceId, count: 3, repaired: true, detail: 'the isolation rules had been changed' })]);
    const alerts = await ctx.services.alerts.list(ctx.users.security_reader.actor, { deviceId });
    expect(alerts.items.filter((a) => /^Isolation lifted again on /.test(a.title))).toHaveLength(1);
    expect(agent.log()).toContain('effect re-applied after tampering');

    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [isolated.id] });
    expect((await settled(undo.json().items[0].id)).status).toBe('completed');
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    // Released: a flushed firewall stays open, and nothing more is counted.
    nft('flush', 'ruleset');
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    expect(await driftCount()).toBe(3);
  }, 90_000);

  it('selective isolation keeps the named allowances reachable', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'selective', allow: [peer.address] },
    });
    const isolated = await settled(created.json().id);
    expect(isolated.status, JSON.stringify(isolated.result)).toBe('completed');
    expect(await lab.canConnect(endpoint.ns, peer.address, 7000)).toBe(true);
    expect(await lab.canConnect(endpoint.ns, endpoint.gateway, 7000)).toBe(false);
    const undo = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/undo', { ids: [isolated.id] });
    expect((await settled(undo.json().items[0].id)).status).toBe('completed');
  });

  // Last: the device leaves Quell.
  it('offboarding an isolated device: its agent releases the isolation, removes its identity, reports, and never starts again without a new enrolment', async () => {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'isolate_device', deviceId, source: 'manual', entity: { name: 'endpoint' }, parameters: { isolation: 'full' },
    });
    expect((await settled(created.json().id)).status).toBe('completed');
    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(false);
    const exited = new Promise<number | null>((resolve) => agent.child.once('exit', (code) => resolve(code)));

    expect((await ctx.request(ctx.users.security_operator, 'POST', `/api/devices/${deviceId}/offboard`, {})).statusCode).toBe(403);
    const offboard = await ctx.request(ctx.users.security_admin, 'POST', `/api/devices/${deviceId}/offboard`, {});
    expect(offboard.statusCode, offboard.body).toBe(200);
    expect(await exited).toBe(78);

    expect(await lab.canConnect(peer.ns, endpoint.address, 7000)).toBe(true);
    expect(existsSync(join(work, 'agent', 'identity.json'))).toBe(false);
    const marker = JSON.parse(readFileSync(join(work, 'agent', 'offboarded.json'), 'utf8')) as { released: string[] };
    expect(marker.released).toEqual(expect.arrayContaining([expect.stringMatching(/^isolation \(action /)]));
    const agentRow = await ctx.store.db.selectFrom('agents').selectAll().where('device_id', '=', deviceId).executeTakeFirstOrThrow();
    expect(agentRow.revoked_at).not.toBeNull();
    expect(JSON.parse(agentRow.offboard_report!)).toMatchObject({ released: marker.released, failures: [] });
    const audit = await ctx.request(ctx.users.security_admin, 'GET', `/api/audit?kind=agent.offboarded`);
    expect(audit.json().items.some((e: { targetId: string }) => e.targetId === deviceId)).toBe(true);

    // Started again, it says it was offboarded and ends without touching anything.
    const again = spawnAgent(join(work, 'agent'), endpoint.ns, { bundle: true });
    expect(await again.stop('SIGCONT')).toBe(78); // SIGCONT: there is nothing to stop, it ends by itself
    expect(again.log()).toMatch(/This device was offboarded from Quell at .*Enrol it again/);
    agent = again;
  }, 60_000);
});
