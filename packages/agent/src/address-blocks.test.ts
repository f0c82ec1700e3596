import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { ADDRESS_BLOCKS_TABLE, withoutSeenSets } from './executors/address-blocks.linux.ts';
import { type Endpoint, type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type AgentProcess, NO_PERIODIC_CHECK_SECONDS, quell, spawnAgent, waitFor } from './test/helper.ts';

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
  let deviceId: string;
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
    deviceId = (await ctx.store.db.selectFrom('agents').select('device_id').executeTakeFirstOrThrow()).device_id;
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
    // No state is still on its way (the lifts of the test before): what puts the table back is the drift watch.
    await waitFor('the agent to hold the latest state', async () => ((await ctx.store.db.selectFrom('agents').select('state_version').where('device_id', '=', deviceId).executeTakeFirstOrThrow()).state_version
      === (await ctx.services.desiredState.current(null))!.version ? true : undefined));
    execFileSync('ip', ['netns', 'exec', endpoint.ns, 'nft', 'flush', 'ruleset']);
    await waitFor('the address blocks to be put back', async () => (agent.log().includes('"effect":"address_blocks"') && table().includes(attacker.address) ? true : undefined), 15_000);
    expect(agent.log()).toContain('the address block rules were gone');
    expect(await reaches(attacker, endpoint)).toBe(false);
    await lift(id);
    await waitFor('the attacker to be reachable again', async () => ((await reaches(endpoint, attacker)) ? true : undefined), 15_000);
  });

  type HitRow = { indicatorId: string; deviceId: string; count: number; lastHit: { action: string; remote: string | null; direction: string | null; process: string | null; user: string | null } };
  const hitsOf = async (indicatorId: string): Promise<HitRow[]> => {
    const response = await ctx.request(ctx.users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${indicatorId}`);
    expect(response.statusCode, response.body).toBe(200);
    return response.json().items;
  };
  const alertsOf = async (indicatorId: string) => (await ctx.store.db.selectFrom('alerts').select(['id', 'title', 'evidence', 'external_id'])
    .where('detection_source', '=', 'indicator').where('external_id', 'like', `hit:${indicatorId}:%`).execute());
  /** One alert per indicator, device and hour: as many as the hours its hits fall in. */
  const hoursOf = async (indicatorId: string) => Number((await ctx.store.db.selectFrom('indicator_hits').select((eb) => eb.fn.countAll<number>().as('n'))
    .where('indicator_id', '=', indicatorId).executeTakeFirstOrThrow()).n);

  it('traffic a block stops is reported, signed: hits per device on the indicator, and one alert per device and hour that starts an investigation', async () => {
    const id = await block(attacker.address);
    await waitFor('the attacker to be cut off', async () => ((await reaches(endpoint, attacker)) ? undefined : true), 15_000);
    expect(await reaches(attacker, endpoint)).toBe(false);
    const rows = await waitFor('the hits to be reported', async () => {
      const found = await hitsOf(id);
      return found.length > 0 && found[0]!.count > 0 ? found : undefined;
    }, 20_000);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ indicatorId: id, deviceId: deviceId, lastHit: { action: 'block', remote: attacker.address } });
    // More attempts in the same hour are counted, not raised again.
    const before = rows[0]!.count;
    expect(await reaches(endpoint, attacker)).toBe(false);
    await waitFor('the new attempt to be counted', async () => ((await hitsOf(id))[0]!.count > before ? true : undefined), 20_000);
    // The table remembers who matched, with counters; the drift check compares the table without them.
    expect(table()).toMatch(/set seen_block_out4 \{[^}]*elements = \{ [^}]*counter packets [1-9]/);
    expect(withoutSeenSets(table())).not.toContain('set seen_block_out4');
    expect(withoutSeenSets(table())).toContain(`elements = { ${attacker.address} }`);
    const alerts = await alertsOf(id);
    expect(alerts).toHaveLength(await hoursOf(id));
    expect(alerts[0]!.title).toContain(attacker.address);
    expect(JSON.parse(alerts[0]!.evidence)).toContainEqual(expect.objectContaining({ kind: 'ip', address: attacker.address }));
    const investigation = await waitFor('the alert to start an investigation', async () => ctx.store.db.selectFrom('investigation_alerts').select('investigation_id')
      .where('alert_id', '=', alerts[0]!.id).executeTakeFirst(), 15_000);
    expect(investigation).toBeDefined();
    // The device's own view lists the same hits.
    const onDevice = await ctx.request(ctx.users.security_reader, 'GET', `/api/indicators/hits?deviceId=${deviceId}`);
    expect(onDevice.json().items.map((row: HitRow) => row.indicatorId)).toContain(id);
    await lift(id);
    await waitFor('the attacker to be reachable again', async () => ((await reaches(endpoint, attacker)) ? true : undefined), 15_000);
  });

  it('an audited address is let through and reported with the process and user that talked to it', async () => {
    const audit = await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'ip', value: neighbour.address, action: 'audit', title: 'watch the neighbour' });
    expect(audit.statusCode, audit.body).toBe(201);
    const id: string = audit.json().id;
    await waitFor('the audit to be applied', async () => (table().includes(neighbour.address) ? true : undefined), 15_000);
    expect(await reaches(endpoint, neighbour)).toBe(true);
    expect(await reaches(neighbour, endpoint)).toBe(true);
    // A connection that stays open: the agent names who holds it.
    const holder = spawn('ip', ['netns', 'exec', neighbour.ns, process.execPath, '-e', `require('node:net').createServer(() => {}).listen(7001, '${neighbour.address}', () => console.log('up'))`]);
    const client = await new Promise<ReturnType<typeof spawn>>((resolve) => holder.stdout.once('data', () => resolve(spawn('ip', ['netns', 'exec', endpoint.ns, process.execPath, '-e',
      `const s = require('node:net').connect(7001, '${neighbour.address}'); s.on('error', () => {}); setInterval(() => s.write('.'), 200)`]))));
    try {
      const row = await waitFor('the audited connection to be reported with its process', async () => {
        const found = (await hitsOf(id))[0];
        return found?.lastHit.process ? found : undefined;
      }, 20_000);
      expect(row.lastHit).toMatchObject({ action: 'audit', remote: neighbour.address, direction: 'outbound', process: 'node', user: 'root' });
    } finally {
      client.kill();
      holder.kill();
    }
    const alerts = await alertsOf(id);
    expect(alerts).toHaveLength(await hoursOf(id));
    expect(alerts[0]!.title).toMatch(/^Audited traffic (to|from) /);
    expect(await reaches(endpoint, neighbour)).toBe(true);
    await lift(id);
    await waitFor('the audit to be lifted', async () => (table() === '' ? true : undefined), 15_000);
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
