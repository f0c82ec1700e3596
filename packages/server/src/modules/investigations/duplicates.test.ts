import { AGENT_PROTOCOL_VERSION } from '@quell/contracts';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../db/migrate.ts';
import { openStore } from '../../db/store.ts';
import { enrolTestAgent, signedByAgent, type TestAgent } from '../../test/agents.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';
import { createTestDatabase } from '../../test/store.ts';

interface SeenAction { id: string; type: string; status: string; deviceId: string; investigationId: string | null; comment: string | null; entity: { sha256?: string; path?: string } }
interface SeenLog { step: string; result: string }

/**
 * One open action per device, action type and entity, whoever proposes it:
 * investigations that find the same file join the action already proposed
 * and follow it; the database holds the rule against concurrent proposals;
 * a rejection is remembered until something new is known.
 */
describe(`no duplicate remediations (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const admin = () => ctx().users.security_admin;
  const operator = () => ctx().users.security_operator;
  let n = 0;
  const hash = () => (++n).toString(16).padStart(64, 'd');

  async function group(level: 'full' | 'semi_any_folder'): Promise<string> {
    return (await ctx().services.devices.createGroup(admin().actor, { name: `${level}-dup-${++n}`, rank: 100 + n, automationLevel: level })).id;
  }
  async function alert(deviceId: string, sha256: string, path: string, severity: 'informational' | 'low' | 'medium' | 'high' = 'high'): Promise<string> {
    const response = await ctx().request(operator(), 'POST', '/api/alerts', {
      title: 'Detection', severity, category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: '2026-11-01T11:00:00Z', evidence: [{ kind: 'file', path, sha256 }],
    });
    expect(response.statusCode, response.body).toBe(201);
    return response.json().id;
  }
  const investigations = async (deviceId: string) => ((await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string; status: string }>)
    .filter((i) => i.deviceId === deviceId);
  const investigationOf = async (deviceId: string) => (await investigations(deviceId))[0]!.id;
  const detail = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`)).json() as { investigation: { status: string; conclusion: string | null }; actions: SeenAction[]; log: SeenLog[]; entities: Array<{ deviceId: string; actionId: string | null }> };
  const run = () => ctx().services.investigations.runDue();
  const quarantines = async (sha256: string) => (await ctx().store.db.selectFrom('actions').selectAll().where('entity_sha256', '=', sha256).where('type', 'in', ['quarantine_file', 'stop_and_quarantine_file']).orderBy('device_name').orderBy('requested_at').execute());

  it('4 alerts naming one file on 4 devices give 4 pending quarantines, one per device, which every investigation follows to remediated', async () => {
    const semi = await group('semi_any_folder');
    const devices = [];
    for (const name of ['dup-a', 'dup-b', 'dup-c', 'dup-d']) devices.push(await ctx().createDevice({ groupId: semi, name }));
    const sha256 = hash();
    for (const [i, d] of devices.entries()) await alert(d, sha256, `/tmp/.cache/loader-${i}`);
    await run();

    const made = await quarantines(sha256);
    expect(made).toHaveLength(4);
    expect(new Set(made.map((a) => a.device_id)).size).toBe(4);
    expect(made.every((a) => a.status === 'pending_approval')).toBe(true);
    // The first investigation to remediate proposed them all; each of the others joined them and says so.
    const ids = await Promise.all(devices.map(investigationOf));
    const proposer = made[0]!.investigation_id!;
    expect(made.every((a) => a.investigation_id === proposer)).toBe(true);
    for (const id of ids) {
      const seen = await detail(id);
      expect(seen.investigation.status).toBe('pending_action');
      expect(seen.actions.map((a) => a.id).sort()).toEqual(made.map((a) => a.id).sort());
      expect(seen.entities.every((e) => made.some((a) => a.id === e.actionId))).toBe(true);
      const remediate = seen.log.find((l) => l.step === 'remediate')!.result;
      if (id === proposer) {
        expect(remediate).toBe('4 actions proposed (0 automatic, 4 pending approval)');
      } else {
        expect(remediate).toMatch(/^0 actions proposed \(0 automatic, 0 pending approval\), 4 already proposed; /);
        for (const a of made) expect(remediate).toContain(`${a.device_name}: quarantine_file of ${a.entity_path} already proposed by investigation ${proposer} as action ${a.id}`);
      }
    }

    // Approving them quarantines each device once; every investigation counts them as its own remediation.
    const approved = await ctx().request(operator(), 'POST', '/api/actions/approve', { ids: made.map((a) => a.id), comment: 'confirmed' });
    expect(approved.statusCode).toBe(200);
    for (const a of made) await ctx().complete(a.id);
    ctx().clock.advance(2000);
    await run();
    const after = await quarantines(sha256);
    expect(after.map((a) => a.status)).toEqual(['completed', 'completed', 'completed', 'completed']);
    for (const id of ids) {
      const seen = await detail(id);
      expect(seen.investigation.status).toBe('remediated');
      expect(seen.log.at(-1)!.result).toBe('remediated: 4 of 4 threats remediated');
      expect(seen.investigation.conclusion).toBe('Remediated: 4 of 4 threats remediated');
    }
  });

  it('investigations running at the same time still give one action per device, type and file; concurrent identical requests create one', async () => {
    const full = await group('full');
    const devices = [];
    for (const name of ['race-a', 'race-b', 'race-c']) devices.push(await ctx().createDevice({ groupId: full, name }));
    const sha256 = hash();
    await Promise.all(devices.map((d, i) => alert(d, sha256, `/tmp/race-${i}`)));
    await Promise.all([run(), run(), run(), run()]);
    const made = await quarantines(sha256);
    expect(made).toHaveLength(3);
    expect(new Set(made.map((a) => a.device_id)).size).toBe(3);
    for (const d of devices) {
      const seen = await detail(await investigationOf(d));
      expect(seen.actions, JSON.stringify(seen.log)).toHaveLength(3);
      expect(seen.log.some((l) => l.result.includes('could not run')), JSON.stringify(seen.log)).toBe(false);
    }

    // The database keeps the rule when the check in code is raced: one request wins, the others are told which action is open.
    const target = await ctx().createDevice({ name: 'race-manual' });
    const other = hash();
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => ctx().services.actions.create(operator().actor, {
      type: 'quarantine_file', deviceId: target, source: 'api', status: 'pending_approval', entity: { name: 'x', path: '/tmp/x', sha256: other },
    })));
    const created = results.filter((r) => r.status === 'fulfilled');
    expect(created).toHaveLength(1);
    const winner = (created[0] as PromiseFulfilledResult<{ id: string }>).value.id;
    for (const r of results.filter((r) => r.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'action_already_open', status: 409, actions: [{ id: winner }] });
    expect(await quarantines(other)).toHaveLength(1);
  });

  it('following a file to other devices skips those where it is quarantined now, and "more instances" counts devices, not actions', async () => {
    const semi = await group('semi_any_folder');
    const [a, b, c] = [await ctx().createDevice({ groupId: semi, name: 'exp-a' }), await ctx().createDevice({ groupId: semi, name: 'exp-b' }), await ctx().createDevice({ groupId: semi, name: 'exp-c' })];
    const sha256 = hash();
    await alert(b, sha256, '/var/tmp/implant', 'informational');
    await alert(c, sha256, '/var/tmp/implant', 'informational');
    await run();
    // On B the file was quarantined twice before duplicates were refused (one after the other), and is still.
    for (let i = 0; i < 2; i++) {
      const id = await ctx().createAction({ deviceId: b, type: 'quarantine_file', status: 'queued', entity: { name: 'implant', path: '/var/tmp/implant', sha256 } });
      await ctx().complete(id);
    }
    await alert(a, sha256, '/tmp/implant', 'high');
    await run();
    const seen = await detail(await investigationOf(a));
    expect(seen.log.find((l) => l.step === 'expand')!.result).toBe('found on 1 other device: exp-c; already quarantined on exp-b');
    expect(seen.actions.map((x) => x.deviceId).sort()).toEqual([a, c].sort());

    const onA = seen.actions.find((x) => x.deviceId === a)!.id;
    await ctx().request(operator(), 'POST', '/api/actions/approve', { ids: [onA] });
    await ctx().complete(onA);
    const instances = await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${onA}/instances`);
    expect(instances.statusCode).toBe(200);
    expect(instances.json().instances).toHaveLength(2);
    expect(instances.json().deviceCount).toBe(1);

    // Once restored on B, the file is followed there again.
    await ctx().request(admin(), 'POST', `/api/actions/${onA}/instances/undo`, { comment: 'false positive' });
    const restores = await ctx().store.db.selectFrom('actions').select('id').where('type', '=', 'restore_file').where('entity_sha256', '=', sha256).where('device_id', '=', b).execute();
    for (const r of restores) await ctx().complete(r.id);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${onA}/instances`)).json().deviceCount).toBe(0);
  });

  it('a rejected remediation is not proposed again by a later investigation without new evidence, and is with it, saying what is new', async () => {
    const semi = await group('semi_any_folder');
    const agent = await enrolTestAgent(ctx(), 'dev-box');
    expect((await ctx().request(admin(), 'PATCH', `/api/devices/${agent.deviceId}`, { groupId: semi })).statusCode).toBe(200);
    const helper = { exe: '/tmp/build-1234/helper', sha256: hash() };
    // Running from /tmp alone gets a process no proposal unless an alert names it: a block indicator makes the helper a threat wherever it is found.
    expect((await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: helper.sha256, action: 'block', title: 'build helper' })).statusCode).toBe(201);
    const answerEvidence = async (a: TestAgent, id: string, pid: number) => {
      const asked = (await detail(id)).actions.filter((x) => x.type === 'collect_evidence' && x.status === 'queued');
      expect(asked).toHaveLength(1);
      const output = JSON.stringify({ processes: [{ pid, exe: helper.exe, sha256: helper.sha256, commandLine: helper.exe }], persistence: [], files: [], leftOut: 0 });
      await ctx().services.agents.result(a.deviceId, signedByAgent(a.key, { v: AGENT_PROTOCOL_VERSION, deviceId: a.deviceId, actionId: asked[0]!.id, outcome: 'completed', output, iat: 0 }));
      ctx().clock.advance(1500);
      await run();
    };
    const settle = async (id: string, decide: (a: SeenAction) => 'approve' | 'reject') => {
      for (const a of (await detail(id)).actions.filter((x) => x.status === 'pending_approval')) {
        const verb = decide(a);
        expect((await ctx().request(operator(), 'POST', `/api/actions/${verb}`, { ids: [a.id], comment: verb === 'reject' ? 'our build helper' : 'ok' })).statusCode).toBe(200);
        if (verb === 'approve') await ctx().complete(a.id);
      }
      ctx().clock.advance(2000);
      await run();
    };

    // The first investigation proposes the dropper and, from the agent's evidence, the helper running in /tmp: the helper is rejected.
    await alert(agent.deviceId, hash(), '/tmp/.x/dropper');
    await run();
    const first = await investigationOf(agent.deviceId);
    await answerEvidence(agent, first, 100);
    const proposed = (await detail(first)).actions.filter((x) => x.type !== 'collect_evidence');
    expect(proposed.map((x) => x.type).sort()).toEqual(['quarantine_file', 'stop_and_quarantine_file']);
    const rejected = proposed.find((x) => x.type === 'stop_and_quarantine_file')!;
    await settle(first, (x) => (x.id === rejected.id ? 'reject' : 'approve'));
    expect((await detail(first)).investigation.status).not.toBe('pending_action');

    // A new alert about another file: the helper is found again, and not proposed again.
    await alert(agent.deviceId, hash(), '/tmp/.y/miner');
    await run();
    const second = (await investigations(agent.deviceId)).find((i) => i.id !== first)!.id;
    await answerEvidence(agent, second, 101);
    const again = await detail(second);
    // It follows the rejected one (its detail lists it), and proposed only the new file.
    expect(again.actions.filter((x) => x.type !== 'collect_evidence').map((x) => [x.type, x.entity.path, x.status, x.investigationId === second]))
      .toEqual([['stop_and_quarantine_file', helper.exe, 'rejected', false], ['quarantine_file', '/tmp/.y/miner', 'pending_approval', true]]);
    expect(again.log.find((l) => l.step === 'remediate')!.result)
      .toContain(`dev-box: stop_and_quarantine_file of ${helper.exe} not proposed again: security-operator rejected it as action ${rejected.id} (proposed by investigation ${first}) and nothing is new since`);
    expect((await quarantines(helper.sha256)).map((x) => x.status)).toEqual(['rejected']);
    await settle(second, () => 'approve');

    // New evidence: an alert that names the helper itself. It is proposed again, and the proposal says what is new.
    const named = await alert(agent.deviceId, helper.sha256, helper.exe, 'medium');
    await run();
    const third = (await investigations(agent.deviceId)).find((i) => i.id !== first && i.id !== second)!.id;
    await answerEvidence(agent, third, 102);
    const renewed = (await detail(third)).actions.filter((x) => x.type !== 'collect_evidence' && x.investigationId === third);
    expect(renewed).toHaveLength(1);
    expect(renewed[0]).toMatchObject({ status: 'pending_approval', entity: { path: helper.exe, sha256: helper.sha256 } });
    expect(renewed[0]!.comment).toBe(`malicious: pid 102: block indicator "build helper"; proposed again after security-operator rejected action ${rejected.id}, new since: alert ${named} ("Detection") names it`);
    expect((await detail(third)).log.find((l) => l.step === 'remediate')!.result).toContain(`proposed again as action ${renewed[0]!.id}: alert ${named} ("Detection") names it`);
  });

  it('a rejection on a device followed to from elsewhere holds until a new fact: a stronger verdict, a block indicator', async () => {
    const semi = await group('semi_any_folder');
    const [x, y, z] = [await ctx().createDevice({ groupId: semi, name: 'rej-x' }), await ctx().createDevice({ groupId: semi, name: 'rej-y' }), await ctx().createDevice({ groupId: semi, name: 'rej-z' })];
    const sha256 = hash();
    await alert(y, sha256, '/opt/tool', 'informational');
    await run();
    await alert(x, sha256, '/opt/tool', 'high');
    await run();
    const first = await quarantines(sha256);
    expect(first.map((a) => [a.device_name, a.status, a.comment])).toEqual([
      ['rej-x', 'pending_approval', 'suspicious: named by a high-severity alert'], ['rej-y', 'pending_approval', 'suspicious: the same file as on rej-x (named by a high-severity alert)'],
    ]);
    expect((await ctx().request(operator(), 'POST', '/api/actions/reject', { ids: first.map((a) => a.id), comment: 'vendor tool' })).statusCode).toBe(200);
    ctx().clock.advance(2000);
    await run();

    // A new alert on X names the file there: proposed again on X; Y has nothing new and is left alone.
    const named = await alert(x, sha256, '/opt/tool', 'high');
    await run();
    const second = (await investigations(x)).find((i) => !first.some((a) => a.investigation_id === i.id))!.id;
    const log = (await detail(second)).log.find((l) => l.step === 'remediate')!.result;
    expect(log).toContain(`rej-x: quarantine_file of /opt/tool proposed again as action `);
    expect(log).toContain(`: alert ${named} ("Detection") names it`);
    const onY = first.find((a) => a.device_id === y)!;
    expect(log).toContain(`rej-y: quarantine_file of /opt/tool not proposed again: security-operator rejected it as action ${onY.id} (proposed by investigation ${onY.investigation_id}) and nothing is new since`);
    expect((await quarantines(sha256)).filter((a) => a.status === 'pending_approval').map((a) => a.device_name)).toEqual(['rej-x']);

    // A block indicator makes the file malicious: a third device's investigation joins the open one on X and proposes again on Y, saying why.
    await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: sha256, action: 'block', title: 'loader after all' });
    ctx().clock.advance(1000);
    await alert(z, sha256, '/opt/tool', 'low');
    await run();
    const open = (await quarantines(sha256)).filter((a) => a.status === 'pending_approval');
    expect(open.map((a) => a.device_name).sort()).toEqual(['rej-x', 'rej-y', 'rej-z']);
    const renewed = open.find((a) => a.device_id === y)!;
    expect(renewed.comment).toBe(`malicious: the same file as on rej-z (block indicator "loader after all"); proposed again after security-operator rejected action ${onY.id}, new since: `
      + 'its verdict is now malicious (the same file as on rej-z (block indicator "loader after all")); it was suspicious; block indicator "loader after all" added');
    const third = await investigationOf(z);
    expect((await detail(third)).log.find((l) => l.step === 'remediate')!.result).toContain(`rej-x: quarantine_file of /opt/tool already proposed by investigation ${second} as action `);
  });

  it('refuses a second identical open action asked for by hand with 409 action_already_open naming the open one', async () => {
    const deviceId = await ctx().createDevice({ name: 'manual-dup' });
    const sha256 = hash();
    const quarantine = (path: string) => ctx().request(operator(), 'POST', '/api/actions', { type: 'quarantine_file', deviceId, source: 'manual', entity: { name: 'tool', path, sha256 } });
    const first = await quarantine('/opt/tool');
    expect(first.statusCode).toBe(201);
    // The same file by its hash, wherever it is said to be.
    const second = await quarantine('/opt/copy-of-tool');
    expect(second.statusCode).toBe(409);
    expect(second.headers['content-type']).toContain('application/problem+json');
    expect(second.json()).toMatchObject({ code: 'action_already_open', actions: [{ id: first.json().id, status: 'queued' }] });
    expect(second.json().detail).toContain(`already open as action ${first.json().id} (queued), proposed by security-operator`);
    // Another type on the same file, or the same on another device, is another action; once the first has ended, it may be asked for again.
    expect((await ctx().request(operator(), 'POST', '/api/actions', { type: 'stop_and_quarantine_file', deviceId, source: 'manual', entity: { name: 'tool', path: '/opt/tool', sha256 } })).statusCode).toBe(201);
    await ctx().complete(first.json().id, 'failed');
    expect((await quarantine('/opt/tool')).statusCode).toBe(201);
  });

  it('the migration keys the actions already there and keeps the oldest of duplicates already open as the open one', async () => {
    const database = await createTestDatabase();
    const store = openStore(database.location);
    try {
      await migrate(store, { through: 17 });
      const device = '00000000-0000-7000-8000-000000000021';
      await sql`INSERT INTO devices (id, name, platform, group_id, created_at) VALUES (${device}, 'old-host', 'linux', NULL, 0)`.execute(store.db);
      const sha256 = 'AB'.repeat(32);
      const rows: Array<[string, string, string, string | null, number]> = [
        ['q-1', 'quarantine_file', 'pending_approval', sha256, 1], ['q-2', 'quarantine_file', 'pending_approval', sha256, 2], ['q-3', 'quarantine_file', 'rejected', sha256, 0],
        ['i-1', 'isolate_device', 'queued', null, 3], ['r-1', 'restore_file', 'queued', sha256, 4], ['s-1', 'stop_service', 'completed', null, 5],
      ];
      for (const [id, type, status, sha, at] of rows) {
        await sql`INSERT INTO actions (id, type, status, entity_type, entity_name, entity_sha256, entity_path, parameters, device_id, device_name, group_id, source, requested_by, requested_at, updated_at)
          VALUES (${id}, ${type}, ${status}, 'file', 'x', ${sha}, ${type === 'stop_service' ? null : '/tmp/x'}, '{}', ${device}, 'old-host', NULL, 'manual', 'ann', ${at}, ${at})`.execute(store.db);
      }
      expect(await migrate(store)).toContain(18);
      const keys = await store.db.selectFrom('actions').select(['id', 'entity_key']).orderBy('id').execute();
      const key = `sha256:${sha256.toLowerCase()}`;
      expect(Object.fromEntries(keys.map((k) => [k.id, k.entity_key]))).toEqual({ 'i-1': 'device', 'q-1': key, 'q-2': null, 'q-3': key, 'r-1': null, 's-1': 'name:x' });
      // From now on the database itself refuses a second open one.
      const again = sql`INSERT INTO actions (id, type, status, entity_type, entity_name, parameters, device_id, device_name, source, requested_by, requested_at, updated_at, entity_key)
        VALUES ('q-4', 'quarantine_file', 'queued', 'file', 'x', '{}', ${device}, 'old-host', 'manual', 'ann', 9, 9, ${key})`;
      await expect(again.execute(store.db)).rejects.toThrow(/unique/i);
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
