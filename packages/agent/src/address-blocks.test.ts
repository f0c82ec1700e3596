import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '../../server/src/test/helper.ts';
import { ADDRESS_BLOCKS_TABLE } from './executors/address-blocks.linux.ts';
import { type Endpoint, type NetnsLab, createNetnsLab } from './netns-lab.ts';
import { type AgentProcess, NO_PERIODIC_CHECK_SECONDS, quell, spawnAgent, waitFor } from './test-support.ts';

/**
 * Address block indicators observed from outside: a managed endpoint running
 * the real agent, an attacker and a neighbour in network namespaces of their
 * own, and TCP probes both ways.
 */
describe(`address block indicators on a real agent, in network namespaces (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  let endpoint: Endpoint;
  let attacker: Endpoint;
  let neighbour: Endpoint;
  let agent: AgentProcess;
  const work = mkdtempSync(join(tmpdir(), 'quell-address-blocks-'));

  beforeAll(async () => {
    lab = await createNetnsLab();
    endpoint = await lab.endpoint('managed');
    attacker = await lab.endpoint('attacker');
    neighbour = await lab.endpoint('neighbour');
    ctx = await setupTestApp({ listen: { host: endpoint.gateway }, clock: liveClock() });
    for (const e of [endpoint, attacker, neighbour]) await lab.listen(e.ns, e.address, 7000);
    const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name: endpoint.ns, uses: 1, expiresInDays: 1 });
    await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', join(work, 'agent')], endpoint.ns);
    // No periodic drift check: a repair the test sees was started by the firewall's own event.
    agent = spawnAgent(join(work, 'agent'), endpoint.ns, { bundle: true, driftCheckSeconds: NO_PERIODIC_CHECK_SECONDS });
    await waitFor('the agent to connect', async () => (agent.log().includes('"msg":"connected"') ? true : undefined), 30_000);
  });

  afterAll(async () => {
    await agent?.stop();
    await ctx?.close();
    await lab?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const reaches = (from: Endpoint, to: Endpoint) => lab.canConnect(from.ns, to.address, 7000);
  const block = async (value: string): Promise<string> => {
    const response = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'ip', value, action: 'block', title: `block ${value}` });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().id;
  };
  const lift = async (id: string) => expect((await ctx.request(ctx.users.security_admin, 'DELETE', `/api/indicators/${id}`)).statusCode).toBe(200);
  /** The agent's table as nft lists it, or '' while there is none. */
  const table = () => spawnSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'list', 'table', 'inet', ADDRESS_BLOCKS_TABLE], { encoding: 'utf8' }).stdout;

  it('a blocked address is unreachable both ways within seconds while a neighbour still works; lifting it restores the traffic', async () => {
    for (const other of [attacker, neighbour]) {
      expect(await reaches(endpoint, other)).toBe(true);
      expect(await reaches(other, endpoint)).toBe(true);
    }
    const id = await block(attacker.address);
    await waitFor('the attacker to be cut off', async () => ((await reaches(endpoint, attacker)) ? undefined : true), 15_000);
    expect(await reaches(attacker, endpoint)).toBe(false);
    expect(await reaches(endpoint, neighbour)).toBe(true);
    expect(await reaches(neighbour, endpoint)).toBe(true);

    await lift(id);
    await waitFor('the attacker to be reachable again', async () => ((await reaches(endpoint, attacker)) ? true : undefined), 15_000);
    expect(await reaches(attacker, endpoint)).toBe(true);
    await waitFor('the table to be gone', async () => (table() === '' ? true : undefined));
  });

  it('a range that holds the Quell server blocks everything in it but the server and what an allow indicator names: the agent keeps its channel', async () => {
    const range = `${endpoint.gateway.split('.').slice(0, 2).join('.')}.0.0/16`;
    const ids = [await block(range), await block('2001:db8:66::/48')];
    await waitFor('both blocks to be applied', async () => (table().includes(range) && table().includes('2001:db8:66::/48') ? true : undefined), 15_000);
    expect(await reaches(endpoint, neighbour)).toBe(false);
    expect(await reaches(attacker, endpoint)).toBe(false);
    // The server is in the range, and still reached: the next change arrives and is applied.
    expect(await lab.canConnect(endpoint.ns, endpoint.gateway, Number(new URL(ctx.url).port))).toBe(true);
    // An allow indicator for one address of the range wins over the block, for that address only.
    const allowed = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'ip', value: neighbour.address, action: 'allow', title: 'the backup server' });
    expect(allowed.statusCode).toBe(201);
    ids.push(allowed.json().id);
    await waitFor('the neighbour to be let through', async () => ((await reaches(endpoint, neighbour)) ? true : undefined), 15_000);
    expect(await reaches(neighbour, endpoint)).toBe(true);
    expect(await reaches(endpoint, attacker)).toBe(false);
    for (const id of ids) await lift(id);
    await waitFor('the range to be lifted', async () => ((await reaches(endpoint, neighbour)) ? true : undefined), 15_000);
  });

  it('a flushed ruleset is put back within seconds: the attacker stays cut off', async () => {
    const id = await block(attacker.address);
    await waitFor('the attacker to be cut off', async () => ((await reaches(endpoint, attacker)) ? undefined : true), 15_000);
    execFileSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'flush', 'ruleset']);
    await waitFor('the address blocks to be put back', async () => (agent.log().includes('"effect":"address_blocks"') && table().includes(attacker.address) ? true : undefined), 15_000);
    expect(agent.log()).toContain('the address block rules were gone');
    expect(await reaches(attacker, endpoint)).toBe(false);
    await lift(id);
    await waitFor('the attacker to be reachable again', async () => ((await reaches(endpoint, attacker)) ? true : undefined), 15_000);
  });

  it('refuses what is not an address or range, and a range wide enough to cut devices off the internet', async () => {
    for (const value of ['10.0.0.0/7', 'example.org', '10.1.2.3/33', '::/0']) {
      const response = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'ip', value, action: 'block', title: 'bad' });
      expect(response.statusCode, value).toBe(400);
      expect(response.json().code).toBe('validation_failed');
    }
    // Stored in the one form it is enforced in: the network of a range, IPv6 compressed.
    const stored = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'ip', value: '2001:DB8:0:0:7::1/64', action: 'audit', title: 'range' });
    expect(stored.json().value).toBe('2001:db8::/64');
  });
});
