import { createHash, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Action } from '@quell/contracts';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { EICAR } from './executors/antivirus-scan.linux.ts';
import { type AgentProcess, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * The agent's antivirus on real files: it watches a folder, quarantines
 * what matches its signatures or a block indicator the moment it lands,
 * and the server records a completed action with source antivirus (undoable
 * like any quarantine) and an alert.
 */
describe(`on-access antivirus of a real agent (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  const work = mkdtempSync(join(tmpdir(), 'quell-av-'));
  const watched = mkdtempSync(join(work, 'downloads-'));
  const agentDir = join(work, 'agent');
  let agent: AgentProcess;
  let deviceId: string;

  beforeAll(async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'av', uses: 1, expiresInDays: 1 });
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(await quell(['agent', 'enrol', '--server', ctx().url, '--token', secret, '--dir', agentDir]))![1]!;
    agent = spawnAgent(agentDir, undefined, { watch: [watched] });
    await waitFor('the agent to connect and watch', async () => (agent.log().includes('antivirus watching') && agent.log().includes('"msg":"connected"') ? true : undefined));
  });
  afterAll(async () => {
    await agent?.stop();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    rmSync(work, { recursive: true, force: true });
  });

  const antivirusActions = async (): Promise<Action[]> =>
    (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions?view=history&source=antivirus&deviceId=${deviceId}&limit=100`)).json().items;
  const quarantineOf = (path: string) => waitFor(`the antivirus to quarantine ${path}`, async () => (await antivirusActions()).find((a) => a.entity.path === path));

  it('quarantines the EICAR file the moment it lands, records it as a completed antivirus action with an alert, and undo restores it byte for byte', async () => {
    const path = join(watched, 'invoice.pdf.com');
    writeFileSync(path, EICAR);
    chmodSync(path, 0o640);
    utimesSync(path, new Date('2026-01-02T03:04:05Z'), new Date('2026-01-02T03:04:05Z'));
    const before = statSync(path);

    const action = await quarantineOf(path);
    expect(action).toMatchObject({ type: 'quarantine_file', status: 'completed', source: 'antivirus', decidedBy: 'Automation', entity: { name: 'invoice.pdf.com', sha256: sha256(EICAR) } });
    expect(existsSync(path)).toBe(false);
    const alerts = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${deviceId}`)).json().items;
    expect(alerts.find((a: { externalId: string }) => a.externalId === action.id)).toMatchObject({
      title: 'Malware quarantined: EICAR-Test-File', detectionSource: 'antivirus', category: 'malware', evidence: [{ kind: 'file', path, sha256: sha256(EICAR) }],
    });

    const undo = await ctx().request(ctx().users.security_admin, 'POST', '/api/actions/undo', { ids: [action.id], comment: 'test file, expected' });
    expect(undo.statusCode).toBe(200);
    const restored = await waitForAction(ctx(), undo.json().items[0].id);
    expect(restored.status, JSON.stringify(restored.result)).toBe('completed');
    expect(readFileSync(path, 'latin1')).toBe(EICAR);
    const after = statSync(path);
    expect([after.mode, after.uid, after.gid, after.mtimeMs]).toEqual([before.mode, before.uid, before.gid, before.mtimeMs]);
    // The analyst's decision stands: the restored file is not taken again.
    await waitFor('the antivirus to leave the restored file alone', async () => (agent.log().includes('antivirus left alone a file an analyst restored') ? true : undefined));
    expect(readFileSync(path, 'latin1')).toBe(EICAR);
    expect((await antivirusActions()).filter((a) => a.entity.path === path)).toHaveLength(1);
    rmSync(path);
  });

  it('catches files in folders below the watched one, made after it started, however deep; never through a link to a folder elsewhere', async () => {
    const deep = join(watched, 'extract', 'a', 'b');
    mkdirSync(deep, { recursive: true });
    const path = join(deep, 'payload.com');
    writeFileSync(path, EICAR);
    expect((await quarantineOf(path)).status).toBe('completed');
    expect(existsSync(path)).toBe(false);

    // A folder created and written at once (an archive unpacked): what landed before its watch began is caught too.
    const burst = join(watched, 'unpacked');
    mkdirSync(join(burst, 'x', 'y'), { recursive: true });
    writeFileSync(join(burst, 'x', 'y', 'first.com'), EICAR);
    expect((await quarantineOf(join(burst, 'x', 'y', 'first.com'))).status).toBe('completed');

    const elsewhere = mkdtempSync(join(work, 'elsewhere-'));
    symlinkSync(elsewhere, join(watched, 'link'));
    writeFileSync(join(elsewhere, 'not-ours.com'), EICAR);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(existsSync(join(elsewhere, 'not-ours.com'))).toBe(true);
    rmSync(join(watched, 'link'));
    rmSync(join(watched, 'extract'), { recursive: true });
    rmSync(burst, { recursive: true });
  });

  it('a new block indicator reaches the agent within seconds and catches a file already in the folder', async () => {
    const path = join(watched, 'helper.bin');
    const bytes = `not a known signature ${randomUUID()}`;
    writeFileSync(path, bytes);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(existsSync(path)).toBe(true);

    const created = await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'sha256', value: sha256(bytes), action: 'block', title: 'dropper from IR-9' });
    expect(created.statusCode).toBe(201);
    const action = await quarantineOf(path);
    expect(action.status).toBe('completed');
    expect(existsSync(path)).toBe(false);
    expect(agent.log()).toContain('"signature":"Block indicator"');
  });

  it('block indicators by SHA-1 and MD5 reach the agent and catch files in the watched folder like SHA-256 ones', async () => {
    const digest = (algorithm: string, text: string): string => createHash(algorithm).update(text).digest('hex');
    const bySha1 = join(watched, 'loader.bin');
    const byMd5 = join(watched, 'stager.bin');
    const [sha1Bytes, md5Bytes] = [`known by its SHA-1 ${randomUUID()}`, `known by its MD5 ${randomUUID()}`];
    writeFileSync(bySha1, sha1Bytes);
    writeFileSync(byMd5, md5Bytes);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect([existsSync(bySha1), existsSync(byMd5)]).toEqual([true, true]);

    for (const [type, value, title] of [['sha1', digest('sha1', sha1Bytes), 'loader of IR-14'], ['md5', digest('md5', md5Bytes).toUpperCase(), 'stager of IR-14']]) {
      expect((await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type, value, action: 'block', title })).statusCode).toBe(201);
    }
    for (const path of [bySha1, byMd5]) expect((await quarantineOf(path)).status).toBe('completed');
    expect([existsSync(bySha1), existsSync(byMd5)]).toEqual([false, false]);
  });

  it('an audit indicator leaves the file where it is and reports it: a hit with its path on the indicator, and one alert', async () => {
    const path = join(watched, 'admin-tool.bin');
    const bytes = `a dual-use tool ${randomUUID()}`;
    const created = await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'sha1', value: createHash('sha1').update(bytes).digest('hex'), action: 'audit', title: 'watch this tool' });
    expect(created.statusCode).toBe(201);
    const id: string = created.json().id;
    // Written before or after the audit arrives: either the watch sees it land, or the sweep a new audit brings finds it.
    writeFileSync(path, bytes);
    const hits = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${id}`)).json().items;
    const [row] = await waitFor('the hit to be reported', async () => ((await hits()).length > 0 ? hits() : undefined));
    expect(row).toMatchObject({ deviceId, lastHit: { action: 'audit', path } });
    expect(existsSync(path)).toBe(true);
    expect((await antivirusActions()).some((a) => a.entity.path === path)).toBe(false);
    const alerts = await ctx().store.db.selectFrom('alerts').select(['title', 'evidence']).where('external_id', 'like', `hit:${id}:%`).execute();
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.title).toBe(`Audited file ${path} on ${row.deviceName}`);
    expect(JSON.parse(alerts[0]!.evidence)).toEqual([{ kind: 'file', path, sha256: sha256(bytes) }]);
  });

  it('a quarantine by a block indicator counts as a hit on it, without a second alert', async () => {
    const path = join(watched, 'counted.bin');
    const bytes = `counted on its indicator ${randomUUID()}`;
    const created = await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'md5', value: createHash('md5').update(bytes).digest('hex'), action: 'block', title: 'counted' });
    const id: string = created.json().id;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    writeFileSync(path, bytes);
    await quarantineOf(path);
    const hits = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${id}`)).json().items;
    const [row] = await waitFor('the hit to be reported', async () => ((await hits()).length > 0 ? hits() : undefined));
    expect(row).toMatchObject({ deviceId, count: 1, lastHit: { action: 'block', path } });
    expect(await ctx().store.db.selectFrom('alerts').select('id').where('external_id', 'like', `hit:${id}:%`).execute()).toEqual([]);
  });

  it('a block indicator scoped to a device group reaches only that group: moving the device there brings it', async () => {
    const group = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'finance', rank: 1, automationLevel: 'full' })).id;
    const path = join(watched, 'payroll-helper.bin');
    const bytes = `finance-only block ${randomUUID()}`;
    await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'sha256', value: sha256(bytes), action: 'block', title: 'finance only', deviceGroupIds: [group] });
    writeFileSync(path, bytes);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(existsSync(path)).toBe(true);

    expect((await ctx().request(ctx().users.security_admin, 'PATCH', `/api/devices/${deviceId}`, { groupId: group })).statusCode).toBe(200);
    expect((await quarantineOf(path)).status).toBe('completed');
    expect(existsSync(path)).toBe(false);
  });

  it('an on-demand scan uses the block indicators in force, and each finding comes back as an alert', async () => {
    const elsewhere = mkdtempSync(join(work, 'share-'));
    writeFileSync(join(elsewhere, 'eicar.txt'), EICAR);
    const bytes = `blocked by indicator ${randomUUID()}`;
    writeFileSync(join(elsewhere, 'tool.bin'), bytes);
    await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'sha256', value: sha256(bytes), action: 'block', title: 'tool of IR-12' });
    await waitFor('the agent to hold the new block list', async () => ((await ctx().store.db.selectFrom('agents').select('state_version').where('device_id', '=', deviceId).executeTakeFirstOrThrow()).state_version
      === (await ctx().services.desiredState.current(null))!.version ? true : undefined));
    const scan = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'run_antivirus_scan', deviceId, source: 'manual', entity: { name: 'device' }, parameters: { roots: [elsewhere] } });
    const done = await waitForAction(ctx(), scan.json().id);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    const alerts = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${deviceId}`)).json().items as Array<{ title: string; externalId: string; evidence: Array<{ path: string }> }>;
    const fromScan = alerts.filter((a) => a.externalId.startsWith(`${done.id}:`)).map((a) => [a.title, a.evidence[0]!.path]).sort();
    expect(fromScan).toEqual([['Malware found by a scan: Block indicator', join(elsewhere, 'tool.bin')], ['Malware found by a scan: EICAR-Test-File', join(elsewhere, 'eicar.txt')]]);
  });

  it('reports each quarantine once: a restarted agent sends nothing the server already acknowledged', async () => {
    const count = (await antivirusActions()).length;
    await agent.stop();
    agent = spawnAgent(agentDir, undefined, { watch: [watched] });
    await waitFor('the agent to reconnect', async () => (agent.log().includes('"msg":"connected"') ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const actions = await antivirusActions();
    expect(actions.length).toBe(count);
    const alerts = await ctx().store.db.selectFrom('alerts').select('external_id').where('external_id', 'in', actions.map((a) => a.id)).execute();
    expect(alerts).toHaveLength(count);
  });
});
