import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACTION_OUTPUT_MAX_CHARS, AGENT_PROTOCOL_VERSION, type Ed25519PublicJwk, packageUploadMessage } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { enrolTestAgent, signedByAgent } from '../../test/agents.ts';
import { TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';

/**
 * Results, reports and packages come from agents, which may be hostile:
 * each is believed only when signed by the agent's own key, about its own
 * actions and well formed against its schema. A report that is not is
 * refused and changes nothing; a result that is not fails its action, with
 * the reason.
 */
describe(`agents' results, reports and packages (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  const enrol = (name: string) => enrolTestAgent(ctx(), name);
  const signed = signedByAgent;
  const drift = (deviceId: string, actionIds: unknown, extra: object = {}) => ({
    v: AGENT_PROTOCOL_VERSION, deviceId, actionIds, effect: 'isolation', found: 'the isolation rules were gone', repaired: true, at: Date.now(), iat: 0, ...extra,
  });
  const driftOf = async (id: string) => (await ctx().services.actions.get(systemActor(), id)).drift;

  it('counts a drift only on the reporting device\'s own actions in force, and refuses malformed or foreign-signed reports', async () => {
    const mine = await enrol('mine');
    const other = await enrol('other');
    const own = await ctx().createAction({ type: 'isolate_device', deviceId: mine.deviceId, status: 'queued' });
    await ctx().complete(own);
    const theirs = await ctx().createAction({ type: 'isolate_device', deviceId: other.deviceId, status: 'queued' });
    await ctx().complete(theirs);
    const agents = ctx().services.agents;

    await agents.drift(mine.deviceId, mine.publicKey, signed(mine.key, drift(mine.deviceId, [own, theirs])));
    expect((await driftOf(own)).map((d) => d.count)).toEqual([1]);
    expect(await driftOf(theirs)).toEqual([]);

    const refused: Array<[string, string]> = [
      ['signed by another agent', signed(other.key, drift(mine.deviceId, [own]))],
      ['for another device', signed(mine.key, drift(other.deviceId, [own]))],
      ['ids that are not UUIDs', signed(mine.key, drift(mine.deviceId, ['../x']))],
      ['too many ids', signed(mine.key, drift(mine.deviceId, Array.from({ length: 101 }, () => own)))],
      ['an unknown effect', signed(mine.key, drift(mine.deviceId, [own], { effect: 'everything' }))],
      ['no ids', signed(mine.key, drift(mine.deviceId, []))],
      ['a payload that is not an object', signed(mine.key, null)],
      ['garbage', 'not.a.jws'],
    ];
    for (const [what, jws] of refused) await expect(agents.drift(mine.deviceId, mine.publicKey, jws), what).rejects.toThrow(/drift report/);
    expect((await driftOf(own)).map((d) => d.count)).toEqual([1]);
  });

  it('counts a removed file that came back on its quarantine, of either kind, and on no action of another type', async () => {
    const device = await enrol('dropper');
    const quarantined = await ctx().createAction({
      type: 'stop_and_quarantine_file', deviceId: device.deviceId, status: 'queued', entity: { name: '/tmp/x', path: '/tmp/x', sha256: 'a'.repeat(64) },
    });
    await ctx().complete(quarantined);
    const isolated = await ctx().createAction({ type: 'isolate_device', deviceId: device.deviceId, status: 'queued' });
    await ctx().complete(isolated);
    const report = drift(device.deviceId, [quarantined, isolated], { effect: 'quarantined_file', found: '/tmp/x is back', repaired: false, error: 'busy' });
    await ctx().services.agents.drift(device.deviceId, device.publicKey, signed(device.key, report));
    expect(await driftOf(quarantined)).toEqual([expect.objectContaining({ count: 1, repaired: false, detail: '/tmp/x is back; could not put it back: busy' })]);
    expect(await driftOf(isolated)).toEqual([]);
  });

  it('believes an offboarding report only from an agent asked to offboard, and offboarding takes a well-formed body from a Security Administrator', async () => {
    const device = await enrol('leaving');
    const report = { v: AGENT_PROTOCOL_VERSION, deviceId: device.deviceId, released: [], kept: [], failures: [], vault: { files: 0, instructions: null }, iat: 0 };
    const agents = ctx().services.agents;
    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(device.key, report))).rejects.toThrow(/not asked to offboard/);

    const path = `/api/devices/${device.deviceId}/offboard`;
    expect((await ctx().request(ctx().users.security_operator, 'POST', path, {})).statusCode).toBe(403);
    for (const body of [{ releaseEffects: 'yes' }, { releaseEffects: true, also: 1 }, [1]]) {
      const response = await ctx().request(ctx().users.security_admin, 'POST', path, body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.json().code).toBe('validation_failed');
    }
    expect((await ctx().request(ctx().users.security_admin, 'POST', `/api/devices/${'0'.repeat(8)}-0000-4000-8000-${'0'.repeat(12)}/offboard`, {})).statusCode).toBe(404);
    expect((await ctx().request(ctx().users.security_admin, 'POST', path, { releaseEffects: false })).statusCode).toBe(200);

    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(device.key, { ...report, released: 'all' }))).rejects.toThrow(/malformed/);
    await expect(agents.offboarded(device.deviceId, device.publicKey, signed(generateKeyPairSync('ed25519').privateKey, report))).rejects.toThrow(/does not verify/);
    expect((await ctx().store.db.selectFrom('agents').select('revoked_at').where('device_id', '=', device.deviceId).executeTakeFirstOrThrow()).revoked_at).toBeNull();
    await agents.offboarded(device.deviceId, device.publicKey, signed(device.key, report));
    expect((await ctx().store.db.selectFrom('agents').select('revoked_at').where('device_id', '=', device.deviceId).executeTakeFirstOrThrow()).revoked_at).not.toBeNull();
  });

  describe('results', () => {
    const result = (deviceId: string, actionId: string, extra: object) => ({ v: AGENT_PROTOCOL_VERSION, deviceId, actionId, outcome: 'completed', iat: 0, ...extra });
    const evidence = { processes: [{ pid: 700, exe: '/opt/app/bin/app', sha256: 'a'.repeat(64), commandLine: '/opt/app/bin/app' }], persistence: [], files: [], leftOut: 0 };
    async function answered(type: 'collect_evidence' | 'run_antivirus_scan' | 'isolate_device', payload: (deviceId: string, actionId: string) => unknown) {
      const agent = await enrol(`answers-${type}-${Math.random().toString(36).slice(2, 8)}`);
      const id = await ctx().createAction({ type, deviceId: agent.deviceId, status: 'queued', entity: { name: 'device' } });
      expect(await ctx().services.agents.result(agent.deviceId, signed(agent.key, payload(agent.deviceId, id)))).toBe(id);
      return { ...(await ctx().services.actions.get(systemActor(), id)).action, deviceId: agent.deviceId };
    }

    it('records a well-formed evidence report whole, and fails an action whose answer is not its report, with the reason', async () => {
      expect(await answered('collect_evidence', (d, a) => result(d, a, { output: JSON.stringify(evidence) }))).toMatchObject({ status: 'completed', result: { output: JSON.stringify(evidence) } });
      const broken: Array<[string, unknown, RegExp]> = [
        ['plain text', 'simulated collect_evidence', /^The agent's answer is not a valid collect evidence report: it is not JSON/],
        ['the wrong shape', JSON.stringify({ ...evidence, processes: 'all of them' }), /^The agent's answer is not a valid collect evidence report: \/processes must be array$/],
        ['a hash that is not one', JSON.stringify({ ...evidence, processes: [{ ...evidence.processes[0], sha256: 'zz' }] }), /\/processes\/0\/sha256/],
        ['too long to keep whole', JSON.stringify({ ...evidence, persistence: Array.from({ length: 2000 }, () => ({ kind: 'cron', source: '/etc/crontab', text: 'x'.repeat(40) })) }), /more than the 65536 allowed/],
      ];
      for (const [what, output, reason] of broken) {
        const action = await answered('collect_evidence', (d, a) => result(d, a, { output }));
        expect(action.status, what).toBe('failed');
        expect(action.result?.error, what).toMatch(reason);
      }
    });

    it('fails an action whose signed result is malformed, and keeps free text only up to its limit', async () => {
      const malformed = await answered('isolate_device', (d, a) => result(d, a, { outcome: 'maybe' }));
      expect(malformed).toMatchObject({ status: 'failed', result: { error: expect.stringMatching(/^The agent's result is malformed: \/outcome/) } });
      const long = await answered('isolate_device', (d, a) => result(d, a, { output: 'y'.repeat(ACTION_OUTPUT_MAX_CHARS + 10) }));
      expect(long.status).toBe('completed');
      expect(long.result?.output).toHaveLength(ACTION_OUTPUT_MAX_CHARS);
      const silent = await answered('isolate_device', (d, a) => result(d, a, { outcome: 'failed' }));
      expect(silent).toMatchObject({ status: 'failed', result: { error: 'failed without a reason' } });
    });

    it('raises alerts for a scan report\'s findings only when the report is well formed', async () => {
      const report = {
        scan: 'quick', roots: ['/tmp'], missingRoots: [], scanned: 3, bytes: 100, directories: 1, skipped: { symlinks: 0, special: 0, tooLarge: 0, excludedMounts: 0, unreadable: 0 },
        findings: [{ path: '/tmp/eicar.com', sha256: 'e'.repeat(64), signature: 'EICAR-Test-File' }], findingsLeftOut: 0, errors: [], durationMs: 5,
      };
      const alertsOf = async (deviceId: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${deviceId}`)).json().items as Array<{ title: string }>;
      const good = await answered('run_antivirus_scan', (d, a) => result(d, a, { output: JSON.stringify(report) }));
      expect(good.status).toBe('completed');
      expect((await alertsOf(good.deviceId)).map((a) => a.title)).toEqual(['Malware found by a scan: EICAR-Test-File']);
      const bad = await answered('run_antivirus_scan', (d, a) => result(d, a, { output: JSON.stringify({ ...report, scanned: -1 }) }));
      expect(bad).toMatchObject({ status: 'failed', result: { error: expect.stringMatching(/\/scanned must be >= 0/) } });
      expect(await alertsOf(bad.deviceId)).toEqual([]);
    });

    it('refuses a result for another device or for nothing, without touching any action', async () => {
      const agent = await enrol('refused-results');
      const id = await ctx().createAction({ type: 'collect_evidence', deviceId: agent.deviceId, status: 'queued', entity: { name: 'device' } });
      const agents = ctx().services.agents;
      await expect(agents.result(agent.deviceId, signed(agent.key, result(agent.deviceId, '../../etc', {})))).rejects.toThrow(/^result names no action$/);
      await expect(agents.result(agent.deviceId, signed(agent.key, [1, 2]))).rejects.toThrow(/^result is for another device$/);
      expect((await ctx().services.actions.get(systemActor(), id)).action.status).toBe('queued');
    });
  });

  it('keeps an investigation package only when it is a gzip-compressed tar archive signed by the action\'s agent', async () => {
    const agent = await enrol('packager');
    const collect = async () => {
      const id = await ctx().createAction({ type: 'collect_investigation_package', deviceId: agent.deviceId, status: 'queued', entity: { name: 'device' } });
      await ctx().services.actions.recordDelivery(systemActor('agent'), id);
      return id;
    };
    const upload = async (body: Buffer, id?: string) => {
      id ??= await collect();
      const hash = createHash('sha256').update(body).digest('hex');
      return ctx().app.inject({
        method: 'PUT', url: `/agent/v1/actions/${id}/package`, payload: body,
        headers: { 'content-type': 'application/octet-stream', 'x-quell-device': agent.deviceId, 'x-quell-signature': sign(null, Buffer.from(packageUploadMessage(id, agent.deviceId, hash)), agent.key).toString('base64url') },
      });
    };
    const dir = mkdtempSync(join(tmpdir(), 'quell-package-'));
    try {
      writeFileSync(join(dir, 'processes.txt'), 'PID PPID COMMAND\n1 0 /sbin/init\n');
      const archive = execFileSync('tar', ['-czf', '-', '-C', dir, '.']);
      expect((await upload(archive)).statusCode).toBe(201);
      // Sent again (its first answer lost with a replica that died): the same package is kept as it was; another is refused.
      const id = await collect();
      expect((await upload(archive, id)).statusCode).toBe(201);
      expect((await upload(archive, id)).statusCode).toBe(201);
      writeFileSync(join(dir, 'processes.txt'), 'PID PPID COMMAND\n1 0 /sbin/init\n666 1 /tmp/implant\n');
      const other = await upload(execFileSync('tar', ['-czf', '-', '-C', dir, '.']), id);
      expect(other.statusCode).toBe(409);
      expect(other.json().code).toBe('package_not_expected');
      for (const forged of [Buffer.from('not a package'), execFileSync('gzip', ['-c'], { input: 'gzip, but no tar inside'.repeat(40) }), archive.subarray(0, 12)]) {
        const refused = await upload(forged);
        expect(refused.statusCode).toBe(400);
        expect(refused.json()).toMatchObject({ code: 'validation_failed', detail: expect.stringMatching(/gzip-compressed tar archive/) });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tells whoever holds an enrolment token\'s secret that it is used up, and anyone else nothing more', async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'once', uses: 1, expiresInDays: 1 });
    const facts = { hostname: 'h', platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' };
    const body = (token: string) => ({ token, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x }, facts });
    expect((await ctx().app.inject({ method: 'POST', url: '/agent/v1/enrol', payload: body(secret) })).statusCode).toBe(201);
    const spent = await ctx().app.inject({ method: 'POST', url: '/agent/v1/enrol', payload: body(secret) });
    expect(spent.statusCode).toBe(401);
    expect(spent.json()).toMatchObject({ code: 'enrolment_token_invalid', detail: 'The enrolment token is used up: every one of its uses has enrolled an agent' });
    const guessed = await ctx().app.inject({ method: 'POST', url: '/agent/v1/enrol', payload: body(secret.replace(/.{4}$/, 'AAAA')) });
    expect(guessed.json()).toMatchObject({ code: 'enrolment_token_invalid', detail: 'The enrolment token is unknown, used up, expired or revoked' });
  });

  it('shows on the device what its agent last reported of the desired state: the version, and what it could not enforce, in its words', async () => {
    const device = await enrol('reporting');
    const agents = ctx().services.agents;
    const deviceState = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${device.deviceId}`)).json().agent.desiredState;
    expect(await deviceState()).toEqual({ version: null, error: null, addressIndicators: null, dnsIndicators: null });
    const report = (version: number, failures: Record<string, string>) => signed(device.key, { v: AGENT_PROTOCOL_VERSION, deviceId: device.deviceId, version, failures, iat: 0 });
    agents.stateApplied(device.deviceId, device.publicKey, report(3, { dns: 'the DNS filter has no resolver to forward to', address_blocks: 'nft: <b>no</b> table' }));
    await ctx().services.desiredState.drain();
    expect(await deviceState()).toEqual({ version: 3, error: null, addressIndicators: 'nft: <b>no</b> table', dnsIndicators: 'the DNS filter has no resolver to forward to' });
    agents.stateApplied(device.deviceId, device.publicKey, report(4, {}));
    await ctx().services.desiredState.drain();
    expect(await deviceState()).toEqual({ version: 4, error: null, addressIndicators: null, dnsIndicators: null });
  });

  describe('indicator hits', () => {
    const hit = (value: string, extra: object = {}) => ({ value, action: 'block', remote: '203.0.113.9', direction: 'outbound', count: 3, firstAt: ctx().clock.now(), lastAt: ctx().clock.now(), ...extra });
    const hits = (deviceId: string, seq: number, list: unknown[]) => ({ v: AGENT_PROTOCOL_VERSION, deviceId, seq, hits: list, iat: 0 });
    const indicator = async (body: object) => {
      const response = await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { title: 'known bad', ...body });
      expect(response.statusCode, response.body).toBe(201);
      return response.json().id as string;
    };
    const rowsOf = async (query: string, user = ctx().users.security_reader) => {
      const response = await ctx().request(user, 'GET', `/api/indicators/hits?${query}`);
      expect(response.statusCode, response.body).toBe(200);
      return response.json().items as Array<{ indicatorId: string; deviceId: string; count: number; lastAt: string; lastHit: Record<string, unknown> }>;
    };
    const alertsOf = (indicatorId: string) => ctx().store.db.selectFrom('alerts').select(['id', 'title', 'evidence']).where('detection_source', '=', 'indicator')
      .where('external_id', 'like', `hit:${indicatorId}:%`).execute();

    it('counts each report once, raises one alert per indicator, device and hour, and dates nothing in the future', async () => {
      const device = await enrol('talker');
      const agents = ctx().services.agents;
      const id = await indicator({ type: 'ip', value: '203.0.113.9', action: 'block' });
      const report = signed(device.key, hits(device.deviceId, 100, [hit('203.0.113.9', { process: { pid: 7, name: 'curl', commandLine: 'curl http://203.0.113.9/' }, user: 'alice' })]));
      expect(await agents.indicatorHits(device.deviceId, device.publicKey, report)).toBe(100);
      // Sent again (its acknowledgement was lost): acknowledged again, not counted again.
      expect(await agents.indicatorHits(device.deviceId, device.publicKey, report)).toBe(100);
      await agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 99, [hit('203.0.113.9')])));
      expect((await rowsOf(`indicatorId=${id}`)).map((row) => row.count)).toEqual([3]);

      ctx().clock.advance(60_000);
      await agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 101, [hit('203.0.113.9', { count: 2, lastAt: ctx().clock.now() + 86_400_000 })])));
      const [row] = await rowsOf(`deviceId=${device.deviceId}`);
      expect(row).toMatchObject({ indicatorId: id, deviceId: device.deviceId, count: 5, lastAt: new Date(ctx().clock.now()).toISOString(), lastHit: { action: 'block', remote: '203.0.113.9', direction: 'outbound' } });
      const alerts = await alertsOf(id);
      expect(alerts).toHaveLength(1);
      expect(JSON.parse(alerts[0]!.evidence)).toEqual(expect.arrayContaining([
        { kind: 'ip', address: '203.0.113.9', role: 'destination' }, expect.objectContaining({ kind: 'process', name: 'curl', pid: 7, user: 'alice' }), { kind: 'user', name: 'alice' },
      ]));

      // The next hour is a new row and a new alert.
      ctx().clock.advance(3_600_000);
      await agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 102, [hit('203.0.113.9')])));
      expect(await alertsOf(id)).toHaveLength(2);
      expect((await rowsOf(`indicatorId=${id}`))[0]!.count).toBe(8);

      // Matched twice in one report, in that same hour: both add up on its row, the later one is the last hit, and no alert is raised again.
      await agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 103, [hit('203.0.113.9', { count: 4 }), hit('203.0.113.9', { count: 5, user: 'bob' })])));
      const [twice] = await rowsOf(`indicatorId=${id}`);
      expect(twice).toMatchObject({ count: 17, lastHit: { user: 'bob' } });
      expect(await alertsOf(id)).toHaveLength(2);
    });

    it('counts nothing an indicator of the device\'s scope does not name, and shows hits only to those who may see the device', async () => {
      const group = (await ctx().services.devices.createGroup(systemActor(), { name: 'build servers', rank: 1, automationLevel: 'full' })).id;
      const device = await enrol('outsider');
      const scoped = await indicator({ type: 'sha256', value: 'b'.repeat(64), action: 'audit', deviceGroupIds: [group] });
      const blockedFile = await indicator({ type: 'md5', value: 'c'.repeat(32), action: 'block' });
      const audited = await indicator({ type: 'ip', value: '198.51.100.0/24', action: 'audit' });
      const agents = ctx().services.agents;
      await agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 1, [
        // Out of the device's scope, an action the indicator does not have, a value no indicator has.
        hit('b'.repeat(64), { action: 'audit', remote: undefined, direction: undefined, path: '/tmp/x' }),
        hit('198.51.100.0/24', { action: 'block', remote: '198.51.100.7' }),
        hit('192.0.2.1'),
        // Matched: a file a block quarantined (its quarantine raised the alert), and audited traffic.
        hit('c'.repeat(32), { remote: undefined, direction: undefined, path: '/tmp/dropper', sha256: 'd'.repeat(64) }),
        hit('198.51.100.0/24', { action: 'audit', remote: '198.51.100.7', direction: 'inbound' }),
      ])));
      expect(await rowsOf(`indicatorId=${scoped}`)).toEqual([]);
      expect(await rowsOf(`indicatorId=${blockedFile}`)).toEqual([expect.objectContaining({ count: 3, lastHit: expect.objectContaining({ path: '/tmp/dropper' }) })]);
      expect(await alertsOf(blockedFile)).toEqual([]);
      expect(await rowsOf(`indicatorId=${audited}`)).toEqual([expect.objectContaining({ lastHit: expect.objectContaining({ action: 'audit', direction: 'inbound' }) })]);
      expect(JSON.parse((await alertsOf(audited))[0]!.evidence)).toEqual([{ kind: 'ip', address: '198.51.100.7', role: 'source' }]);
      const unmatched = await ctx().store.db.selectFrom('audit_log').select('after_json').where('kind', '=', 'agent.hits_unmatched').execute();
      expect(unmatched.map((row) => JSON.parse(row.after_json!))).toEqual([{ unmatched: 3, seq: 1 }]);

      const buildReader = await createUser(ctx().services, 'security_reader', 'build-reader', [group]);
      expect(await rowsOf(`deviceId=${device.deviceId}`, buildReader)).toEqual([]);
      expect((await rowsOf(`deviceId=${device.deviceId}`)).length).toBe(2);
    });

    it('counts a refused or audited DNS query on the domain or URL indicator whose name holds it', async () => {
      const device = await enrol('resolver-user');
      const domain = await indicator({ type: 'domain', value: 'evil.test', action: 'block' });
      const url = await indicator({ type: 'url', value: 'https://phish.test/login?next=%2Fevil.test', action: 'audit' });
      const dns = (value: string, name: string, action: string) => hit(value, { action, name, remote: undefined, direction: undefined, count: 1 });
      await ctx().services.agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 1, [
        dns('evil.test', 'c2.evil.test', 'block'), dns('phish.test', 'phish.test', 'audit'),
        // The URL's query string names evil.test, its host does not: no URL indicator is enforced at evil.test by audit.
        dns('evil.test', 'evil.test', 'audit'),
      ])));
      expect(await rowsOf(`indicatorId=${domain}`)).toEqual([expect.objectContaining({ count: 1, lastHit: expect.objectContaining({ action: 'block', name: 'c2.evil.test', remote: null }) })]);
      expect(await rowsOf(`indicatorId=${url}`)).toEqual([expect.objectContaining({ count: 1, lastHit: expect.objectContaining({ action: 'audit', name: 'phish.test' }) })]);
      expect(JSON.parse((await alertsOf(domain))[0]!.evidence)).toEqual([{ kind: 'url', url: 'c2.evil.test' }]);
      expect(await alertsOf(url)).toHaveLength(1);
    });

    it('counts traffic to an address a blocked name resolved to on that name\'s domain indicator, however long the name', async () => {
      const device = await enrol('resolved-user');
      const long = `${'a'.repeat(60)}.${'b'.repeat(60)}.example`;
      const domain = await indicator({ type: 'domain', value: long, action: 'block' });
      await ctx().services.agents.indicatorHits(device.deviceId, device.publicKey, signed(device.key, hits(device.deviceId, 1, [
        hit(long, { action: 'block', remote: '198.51.100.7', direction: 'outbound', name: `c2.${long}` }),
      ])));
      expect(await rowsOf(`indicatorId=${domain}`)).toEqual([expect.objectContaining({ count: 3, lastHit: expect.objectContaining({ remote: '198.51.100.7', name: `c2.${long}` }) })]);
      const [alert] = await alertsOf(domain);
      expect(alert!.title).toBe(`Blocked traffic to 198.51.100.7 (an address of c2.${long}) on resolved-user`);
      expect(JSON.parse(alert!.evidence)).toEqual([{ kind: 'ip', address: '198.51.100.7', role: 'destination' }, { kind: 'url', url: `c2.${long}` }]);
    });

    it('refuses reports not signed by the device\'s own agent or not well formed, and counts nothing of them', async () => {
      const mine = await enrol('hits-mine');
      const other = await enrol('hits-other');
      const id = await indicator({ type: 'ip', value: '203.0.113.77', action: 'block' });
      const good = hit('203.0.113.77', { remote: '203.0.113.77' });
      const refused: Array<[string, string]> = [
        ['signed by another agent', signed(other.key, hits(mine.deviceId, 5, [good]))],
        ['for another device', signed(mine.key, hits(other.deviceId, 5, [good]))],
        ['no hits', signed(mine.key, hits(mine.deviceId, 5, []))],
        ['too many hits', signed(mine.key, hits(mine.deviceId, 5, Array.from({ length: 501 }, () => good)))],
        ['a count of zero', signed(mine.key, hits(mine.deviceId, 5, [{ ...good, count: 0 }]))],
        ['a relative path', signed(mine.key, hits(mine.deviceId, 5, [{ ...good, path: 'etc/passwd' }]))],
        ['an unknown action', signed(mine.key, hits(mine.deviceId, 5, [{ ...good, action: 'allow' }]))],
        ['no sequence number', signed(mine.key, { ...hits(mine.deviceId, 5, [good]), seq: 0 })],
        ['garbage', 'not.a.jws'],
      ];
      for (const [what, jws] of refused) await expect(ctx().services.agents.indicatorHits(mine.deviceId, mine.publicKey, jws), what).rejects.toThrow(/indicator hits report/);
      expect(await rowsOf(`indicatorId=${id}`)).toEqual([]);
      // The refused reports used no sequence number: the next good one counts.
      await ctx().services.agents.indicatorHits(mine.deviceId, mine.publicKey, signed(mine.key, hits(mine.deviceId, 5, [good])));
      expect((await rowsOf(`indicatorId=${id}`)).map((row) => row.count)).toEqual([3]);
    });
  });
});
