import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { type CreateActionBody, DEVICE_OFFLINE_AFTER_MS, type Ed25519PublicJwk, TOTAL_COUNT_CAP } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { systemActor } from '../../actor.ts';
import { TEST_DIALECT, createUser, useTestApp } from '../../test/helper.ts';

const SHA = (n: number): string => n.toString(16).padStart(64, '0');

describe(`actions API rules (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();

  it('says an isolation in force is unverified once its agent is out of contact, since when, and verified again when it is back', async () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'silent', uses: 1, expiresInDays: 1 });
    const { deviceId } = await ctx().services.agents.enrol({
      token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
      facts: { hostname: 'silent', platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
    }, null);
    const id = await ctx().createAction({ type: 'isolate_device', deviceId, status: 'queued' });
    await ctx().complete(id);
    await ctx().services.agents.touch([deviceId]);
    const heardAt = new Date(ctx().clock.now()).toISOString();
    const detail = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${id}`)).json();
    expect((await detail()).unverified).toBeNull();

    ctx().clock.advance(DEVICE_OFFLINE_AFTER_MS + 1000);
    expect((await detail()).unverified).toEqual({
      since: heardAt, reason: `The device's agent has not been in contact since ${heardAt}: whether the isolation still holds is unverified since then`,
    });
    await ctx().services.agents.touch([deviceId]);
    expect((await detail()).unverified).toBeNull();
    // An action with no effect in force is never said to be unverified.
    const scan = await ctx().createAction({ type: 'run_antivirus_scan', deviceId, status: 'queued' });
    await ctx().complete(scan);
    ctx().clock.advance(DEVICE_OFFLINE_AFTER_MS + 1000);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/actions/${scan}`)).json().unverified).toBeNull();
  });

  it('names where an action came from: the alert that started its investigation and that alert\'s incident; an action from nowhere names none', async () => {
    const { users, request, services } = ctx();
    const group = await services.devices.createGroup(users.security_admin.actor, { name: 'semi-origin', rank: 77, automationLevel: 'semi_any_folder' });
    const deviceId = await ctx().createDevice({ name: 'origin-host', groupId: group.id });
    const alert = await request(users.security_operator, 'POST', '/api/alerts', {
      title: 'Dropper seen', severity: 'high', category: 'malware', detectionSource: 'edr-rules', deviceId, occurredAt: new Date(ctx().clock.now()).toISOString(),
      evidence: [{ kind: 'file', path: '/tmp/origin.bin', sha256: SHA(77) }],
    });
    expect(alert.statusCode, alert.body).toBe(201);
    const { id: alertId, incidentId } = alert.json() as { id: string; incidentId: string };
    await services.investigations.runDue();
    const actions = (await request(users.security_reader, 'GET', `/api/actions?view=pending&deviceId=${deviceId}`)).json().items as Array<{ id: string }>;
    expect(actions.length).toBeGreaterThan(0);
    const detail = (await request(users.security_reader, 'GET', `/api/actions/${actions[0]!.id}`)).json();
    expect(detail.origin).toEqual({ alerts: [{ id: alertId, title: 'Dropper seen', incidentId }], incidentIds: [incidentId] });
    // And from the alert: the investigations it started.
    const started = (await request(users.security_reader, 'GET', `/api/investigations?alertId=${alertId}`)).json().items as Array<{ id: string }>;
    expect(started.map((i) => i.id)).toEqual([(await request(users.security_reader, 'GET', `/api/actions/${actions[0]!.id}`)).json().action.investigationId]);
    expect((await request(users.security_reader, 'GET', `/api/investigations?alertId=${SHA(1).slice(0, 8)}-0000-7000-8000-000000000000`)).json().items).toEqual([]);

    const manual = await ctx().createAction({ type: 'run_antivirus_scan', deviceId, status: 'queued' });
    expect((await request(users.security_reader, 'GET', `/api/actions/${manual}`)).json().origin).toEqual({ alerts: [], incidentIds: [] });

    // The incident's actions, wherever its investigations proposed them, and those taken on the incident itself.
    const onIncident = await ctx().createAction({ type: 'run_antivirus_scan', deviceId, status: 'queued', incidentId });
    const listed = async (view: string) => ((await request(users.security_reader, 'GET', `/api/actions?view=${view}&incidentId=${incidentId}`)).json().items as Array<{ id: string }>).map((a) => a.id);
    expect((await listed('pending')).sort()).toEqual(actions.map((a) => a.id).sort());
    expect(await listed('history')).toEqual([onIncident]);
  });

  it('rejects a bulk decision over mixed action types with 400 and changes nothing', async () => {
    const { users, request } = ctx();
    const a = await ctx().createAction({ type: 'isolate_device' });
    const b = await ctx().createAction({ type: 'stop_service', entity: { name: 'svc' } });
    const res = await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [a, b] });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json().code).toBe('mixed_action_types');
    for (const id of [a, b]) expect((await request(users.security_reader, 'GET', `/api/actions/${id}`)).json().action.status).toBe('pending_approval');
  });

  it('is all or nothing: one stale action in a bulk approve fails the call with 409 and leaves the others pending', async () => {
    const { users, request } = ctx();
    const stale = await ctx().createAction();
    const fresh = await ctx().createAction();
    await request(users.security_operator, 'POST', '/api/actions/reject', { ids: [stale] });
    const res = await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [fresh, stale] });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'action_not_pending', actions: [{ id: stale, status: 'rejected' }] });
    expect((await request(users.security_reader, 'GET', `/api/actions/${fresh}`)).json().action.status).toBe('pending_approval');
  });

  it('answers 400 for duplicate ids and 404 for unknown ids, changing nothing', async () => {
    const { users, request } = ctx();
    const id = await ctx().createAction();
    expect((await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [id, id] })).json().code).toBe('duplicate_ids');
    const unknown = await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [id, '01900000-0000-7000-8000-000000000000'] });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('action_not_found');
    expect((await request(users.security_reader, 'GET', `/api/actions/${id}`)).json().action.status).toBe('pending_approval');
  });

  it('applies the four-eyes rule per action type: the requester cannot approve, someone else can', async () => {
    const { users, request } = ctx();
    expect((await request(users.security_operator, 'PATCH', '/api/settings', { fourEyesActionTypes: ['contain_device'] })).statusCode).toBe(403);
    expect((await request(users.security_admin, 'PATCH', '/api/settings', { fourEyesActionTypes: ['contain_device'] })).statusCode).toBe(200);
    const id = await ctx().createAction({ type: 'contain_device', entity: { name: '10.0.0.9' }, by: users.security_operator });
    const own = await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [id] });
    expect(own.statusCode).toBe(403);
    expect(own.json().code).toBe('four_eyes_violation');
    expect((await request(users.security_admin, 'POST', '/api/actions/approve', { ids: [id] })).statusCode).toBe(200);
    await request(users.security_admin, 'PATCH', '/api/settings', { fourEyesActionTypes: [] });
  });

  it('lets only a Global Administrator undo contain user', async () => {
    const { users, request } = ctx();
    const id = await ctx().createAction({ type: 'contain_user', entity: { name: 'CORP\\mallory' }, status: 'queued' });
    await ctx().complete(id);
    for (const role of ['security_reader', 'security_operator', 'security_admin'] as const) {
      expect((await request(users[role], 'POST', '/api/actions/undo', { ids: [id] })).statusCode).toBe(403);
    }
    const res = await request(users.global_admin, 'POST', '/api/actions/undo', { ids: [id] });
    expect(res.statusCode).toBe(200);
    expect(res.json().items[0]).toMatchObject({ type: 'release_user', status: 'queued', undoOf: id });
  });

  it('lets only a Global Administrator set parameters.overrideGuard: other roles get 403 guard_override_forbidden and nothing is created', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice();
    const body = { type: 'stop_service', deviceId, entity: { name: 'sshd.service' }, source: 'manual', parameters: { overrideGuard: true } };
    for (const role of ['security_operator', 'security_admin'] as const) {
      const res = await request(users[role], 'POST', '/api/actions', body);
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'guard_override_forbidden', detail: `Creating stop_service with parameters.overrideGuard needs a Global Administrator; your role is ${role}` });
    }
    expect((await request(users.security_reader, 'POST', '/api/actions', body)).json().code).toBe('forbidden');
    expect((await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}`)).json().items).toEqual([]);

    const created = await request(users.global_admin, 'POST', '/api/actions', body);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ status: 'queued', requestedBy: 'global-admin', parameters: { overrideGuard: true } });
    const audit = (await request(users.global_admin, 'GET', `/api/audit?kind=action.create&targetId=${created.json().id}`)).json().items;
    expect(audit).toMatchObject([{ actor: 'global-admin', after: { parameters: { overrideGuard: true } } }]);
  });

  it('refuses parameters.overrideGuard from automated sources and the system, whatever the role, and anything but a boolean', async () => {
    const { users, request, services } = ctx();
    const deviceId = await ctx().createDevice();
    const body = { type: 'stop_service', deviceId, entity: { name: 'systemd-journald.service' }, status: 'queued', parameters: { overrideGuard: true } };
    for (const source of ['automated_investigation', 'antivirus'] as const) {
      const res = await request(users.global_admin, 'POST', '/api/actions', { ...body, source });
      expect(res.statusCode).toBe(403);
      expect(res.json().code).toBe('guard_override_forbidden');
    }
    await expect(services.actions.create(systemActor(), { ...body, source: 'api' } as CreateActionBody)).rejects.toMatchObject({ code: 'guard_override_forbidden', status: 403 });
    const text = await request(users.global_admin, 'POST', '/api/actions', { ...body, source: 'manual', parameters: { overrideGuard: 'true' } });
    expect(text.statusCode).toBe(400);
    expect(text.json().code).toBe('validation_failed');
    expect((await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}`)).json().items).toEqual([]);
  });

  it('takes each type\'s own parameters, typed: 400 says what a parameter must be and creates nothing; what it takes is stored and signed in one spelling', async () => {
    const { users, request, store } = ctx();
    const deviceId = await ctx().createDevice();
    const post = (body: object) => request(users.security_operator, 'POST', '/api/actions', { deviceId, source: 'manual', ...body });
    const refused = async (body: object, detail: string) => {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ code: 'validation_failed', detail: expect.stringContaining(detail) });
    };
    const host = { name: 'host' };
    await refused({ type: 'isolate_device', entity: host, parameters: { isolation: 'selective', allow: '10.0.0.53,10.0.0.10' } }, 'parameters/allow must be a list of at most 64 IP addresses or CIDR ranges');
    await refused({ type: 'isolate_device', entity: host, parameters: { isolation: 'partial' } }, 'parameters/isolation must be full or selective');
    await refused({ type: 'isolate_device', entity: host, parameters: { isolation: 'selective', allow: ['10.0.0.53', '1.2.3.4; flush ruleset'] } }, 'parameters.allow: not an IP address or CIDR range: "1.2.3.4; flush ruleset"');
    await refused({ type: 'isolate_device', entity: host, parameters: { mask: true } }, 'parameters must not have the property "mask"');
    await refused({ type: 'stop_service', entity: { name: 'miner.service' }, parameters: { mask: 'true' } }, 'parameters/mask must be true or false');
    await refused({ type: 'run_antivirus_scan', entity: host, parameters: { roots: '/srv,/home' } }, 'parameters/roots must be a list of 1 to 64 paths');
    await refused({ type: 'contain_device', entity: { name: '10.9.8.7' }, parameters: { mac: '52:54-00:aa:bb:cc' } }, 'parameters/mac must be a MAC address such as 52:54:00:12:34:56 or 52-54-00-12-34-56');
    await refused({ type: 'teleport_device', entity: host }, 'type must be one of isolate_device, release_isolation, ');
    expect((await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}`)).json().items).toEqual([]);

    const isolation = await post({ type: 'isolate_device', entity: host, parameters: { isolation: 'selective', allow: ['10.0.0.53', '10.9.3.4/16', '2001:0db8::0001'] } });
    expect(isolation.statusCode).toBe(201);
    const allow = ['10.0.0.53', '10.9.0.0/16', '2001:db8::1'];
    expect(isolation.json().parameters).toEqual({ isolation: 'selective', allow });
    const { command_jws: jws } = await store.db.selectFrom('actions').select('command_jws').where('id', '=', isolation.json().id).executeTakeFirstOrThrow();
    expect(JSON.parse(Buffer.from(jws!.split('.')[1]!, 'base64url').toString()).parameters).toEqual({ isolation: 'selective', allow });
    const containment = await post({ type: 'contain_device', deviceId: await ctx().createDevice(), entity: { name: '10.9.8.7' }, parameters: { mac: '52-54-00-AA-BB-CC' } });
    expect(containment.json()).toMatchObject({ status: 'queued', parameters: { mac: '52:54:00:aa:bb:cc' } });
  });

  it('needs a Global Administrator to approve an action that carries parameters.overrideGuard; anyone may reject it', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice();
    // Each its own module: a second open action on the same one would be refused as a duplicate.
    const post = async (name = 'nf_tables') => (await request(users.global_admin, 'POST', '/api/actions', {
      type: 'disable_driver', deviceId, entity: { name }, source: 'api', status: 'pending_approval', parameters: { overrideGuard: true },
    })).json().id as string;
    const id = await post();
    const plain = await ctx().createAction({ deviceId, type: 'disable_driver', entity: { name: 'evil_rootkit' } });
    for (const role of ['security_operator', 'security_admin'] as const) {
      const res = await request(users[role], 'POST', '/api/actions/approve', { ids: [id] });
      expect(res.statusCode).toBe(403);
      expect(res.json().code).toBe('guard_override_forbidden');
    }
    // All or nothing: an approval that takes in one overriding action approves none.
    expect((await request(users.security_operator, 'POST', '/api/actions/approve', { ids: [plain, id] })).json().code).toBe('guard_override_forbidden');
    for (const actionId of [id, plain]) expect((await request(users.security_reader, 'GET', `/api/actions/${actionId}`)).json().action.status).toBe('pending_approval');

    const approved = await request(users.global_admin, 'POST', '/api/actions/approve', { ids: [id] });
    expect(approved.statusCode).toBe(200);
    expect(approved.json().items[0]).toMatchObject({ status: 'queued', decidedBy: 'global-admin' });
    const rejected = await request(users.security_operator, 'POST', '/api/actions/reject', { ids: [await post('nf_conntrack')] });
    expect(rejected.json().items[0].status).toBe('rejected');
  });

  it('gives an undo none of its original\'s override', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice();
    const id = (await request(users.global_admin, 'POST', '/api/actions', {
      type: 'stop_service', deviceId, entity: { name: 'NetworkManager.service' }, source: 'manual', parameters: { overrideGuard: true, mask: true },
    })).json().id as string;
    await ctx().complete(id);
    const undo = await request(users.security_operator, 'POST', '/api/actions/undo', { ids: [id] });
    expect(undo.statusCode).toBe(200);
    expect(undo.json().items[0]).toMatchObject({ type: 'restore_service', parameters: { mask: true } });
    expect(undo.json().items[0].parameters).not.toHaveProperty('overrideGuard');
  });

  it('refuses to undo what cannot be undone or is not completed', async () => {
    const { users, request } = ctx();
    const scan = await ctx().createAction({ type: 'run_antivirus_scan', status: 'queued', parameters: { scan: 'quick' } });
    await ctx().complete(scan);
    expect((await request(users.global_admin, 'POST', '/api/actions/undo', { ids: [scan] })).json().code).toBe('not_undoable');
    const pending = await ctx().createAction();
    const res = await request(users.global_admin, 'POST', '/api/actions/undo', { ids: [pending] });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe('action_not_completed');
  });

  it('frees the original for another undo when its undo fails', async () => {
    const { users, request } = ctx();
    const id = await ctx().createAction({ type: 'stop_service', entity: { name: 'evil.service' }, status: 'queued' });
    await ctx().complete(id);
    const first = (await request(users.security_operator, 'POST', '/api/actions/undo', { ids: [id] })).json().items[0].id as string;
    await ctx().complete(first, 'failed');
    const original = (await request(users.security_reader, 'GET', `/api/actions/${id}`)).json().action;
    expect(original).toMatchObject({ status: 'completed', undoneBy: null });
    expect((await request(users.security_operator, 'POST', '/api/actions/undo', { ids: [id] })).statusCode).toBe(200);
  });

  it('cancels pending and queued actions, and refuses to cancel one that already ran', async () => {
    const { users, request } = ctx();
    const queued = await ctx().createAction({ status: 'queued' });
    const res = await request(users.security_operator, 'POST', '/api/actions/cancel', { ids: [queued], comment: 'wrong host' });
    expect(res.json().items[0].status).toBe('cancelled');
    const ran = await ctx().createAction({ status: 'queued' });
    await ctx().complete(ran);
    expect((await request(users.security_operator, 'POST', '/api/actions/cancel', { ids: [ran] })).json().code).toBe('action_not_cancelable');
  });

  it('creates manual actions queued and decided by their requester, and refuses manual pending ones', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice();
    const manual = await request(users.security_operator, 'POST', '/api/actions', { type: 'isolate_device', deviceId, entity: { name: 'host' }, source: 'manual', parameters: { isolation: 'full' } });
    expect(manual.statusCode).toBe(201);
    expect(manual.json()).toMatchObject({ status: 'queued', decidedBy: 'security-operator', requestedBy: 'security-operator', expiresAt: null, parameters: { isolation: 'full' } });
    const bad = await request(users.security_operator, 'POST', '/api/actions', { type: 'isolate_device', deviceId, entity: { name: 'host' }, source: 'manual', status: 'pending_approval' });
    expect(bad.json().code).toBe('manual_actions_are_queued');
    const auto = await request(users.security_operator, 'POST', '/api/actions', { type: 'isolate_device', deviceId: await ctx().createDevice(), entity: { name: 'host' }, source: 'antivirus', status: 'queued' });
    expect(auto.json()).toMatchObject({ status: 'queued', decidedBy: 'Automation' });
    const reader = await request(users.security_reader, 'POST', '/api/actions', { type: 'isolate_device', deviceId, entity: { name: 'host' }, source: 'manual' });
    expect(reader.statusCode).toBe(403);
  });

  it('refuses undo types, unsupported platforms and file actions without a hash', async () => {
    const { users, request } = ctx();
    const linux = await ctx().createDevice({ platform: 'linux' });
    const post = (body: object) => request(users.security_operator, 'POST', '/api/actions', { source: 'api', deviceId: linux, ...body });
    expect((await post({ type: 'restore_file', entity: { name: 'x', sha256: SHA(1) } })).json().code).toBe('undo_types_not_creatable');
    expect((await post({ type: 'remove_registry_key', entity: { name: 'HKLM\\Run\\evil' } })).json().code).toBe('unsupported_platform');
    expect((await post({ type: 'quarantine_file', entity: { name: '/tmp/x' } })).json().code).toBe('validation_failed');
    expect((await post({ type: 'isolate_device', entity: { name: 'x' }, unknownField: 1 })).json().code).toBe('validation_failed');
    // Persistence is named by the file it is in, and by a line of it; a Windows device has none of these files.
    expect((await post({ type: 'remove_persistence', entity: { name: 'authorized_keys' } })).json().code).toBe('validation_failed');
    const windows = await ctx().createDevice({ platform: 'windows' });
    expect((await post({ type: 'remove_persistence', deviceId: windows, entity: { name: 'authorized_keys', path: '/root/.ssh/authorized_keys' } })).json().code).toBe('unsupported_platform');
    const created = await post({ type: 'remove_persistence', entity: { name: 'authorized_keys', path: '/root/.ssh/authorized_keys' }, parameters: { line: 'ssh-rsa AAAA x@kali' } });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.json()).toMatchObject({ type: 'remove_persistence', entity: { path: '/root/.ssh/authorized_keys' }, parameters: { line: 'ssh-rsa AAAA x@kali' } });
  });

  it('an entity named by a path and name too long to index as they are is still one action: a second is refused, and two lines of one file are two', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice({ platform: 'linux' });
    const random = (length: number) => Array.from({ length }, () => Math.floor(Math.random() * 36).toString(36)).join('');
    const entity = { name: random(1000), path: `/etc/cron.d/${random(4000)}` };
    const post = (parameters: object = {}) => request(users.security_operator, 'POST', '/api/actions', { type: 'remove_scheduled_task', source: 'manual', deviceId, entity, parameters });
    const first = await post();
    expect(first.statusCode, first.body).toBe(201);
    const second = await post();
    expect(second.statusCode).toBe(409);
    expect(second.json()).toMatchObject({ code: 'action_already_open' });
    expect((await post({ line: '* * * * * root /tmp/a' })).statusCode).toBe(201);
    expect((await post({ line: '* * * * * root /tmp/b' })).statusCode).toBe(201);
    expect((await post({ line: '* * * * * root /tmp/b' })).statusCode).toBe(409);
  });

  it('pages the History with keyset cursors: every row once, in order', async () => {
    const { users, request, clock } = ctx();
    const deviceId = await ctx().createDevice();
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      clock.advance(1000);
      made.push(await ctx().createAction({ deviceId, status: 'queued', type: 'collect_investigation_package' }));
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().items.map((a: { id: string }) => a.id));
      cursor = res.json().nextCursor;
    } while (cursor);
    expect(seen).toEqual([...made].reverse());
    const asc = await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&order=asc&limit=3&withTotal=true`);
    expect(asc.json().items.map((a: { id: string }) => a.id)).toEqual(made.slice(0, 3));
    expect(asc.json().total).toBe(7);
    const wrong = await request(users.security_reader, 'GET', `/api/actions?view=history&limit=3&cursor=${asc.json().nextCursor}`);
    expect(wrong.json().code).toBe('invalid_cursor');
    expect((await request(users.security_reader, 'GET', '/api/actions?view=history&cursor=garbage')).json().code).toBe('invalid_cursor');
  });

  it('counts the matches of a first page up to 10,000, then says there are more', async () => {
    const { users, request, store } = ctx();
    const deviceId = await ctx().createDevice();
    const template = await store.db.selectFrom('actions').selectAll().where('id', '=', await ctx().createAction({ deviceId, status: 'queued' })).executeTakeFirstOrThrow();
    const total = async () => (await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&limit=5&withTotal=true`)).json();
    const copies = async (n: number) => {
      for (let done = 0; done < n; done += 1000) {
        const rows = Array.from({ length: Math.min(1000, n - done) }, () => ({ ...template, id: randomUUID(), status: 'completed' }));
        await store.db.insertInto('actions').values(rows).execute();
      }
    };
    // With the queued one they make 10,000.
    await copies(TOTAL_COUNT_CAP - 1);
    expect(await total()).toMatchObject({ total: TOTAL_COUNT_CAP, totalIsLowerBound: false });
    await copies(1);
    expect(await total()).toMatchObject({ total: TOTAL_COUNT_CAP, totalIsLowerBound: true });
    const uncounted = (await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&limit=5`)).json();
    expect(uncounted).toMatchObject({ total: null, totalIsLowerBound: false });
    expect(uncounted.items).toHaveLength(5);
  });

  it('filters by time range and rejects inconsistent ranges', async () => {
    const { users, request, clock } = ctx();
    const deviceId = await ctx().createDevice();
    const old = await ctx().createAction({ deviceId, status: 'queued' });
    await ctx().complete(old);
    clock.advance(3 * 86_400_000);
    const recent = await ctx().createAction({ deviceId, status: 'queued' });
    const ids = async (query: string) => (await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&${query}`)).json().items.map((a: { id: string }) => a.id);
    expect(await ids('range=day')).toEqual([recent]);
    expect(await ids('range=week')).toEqual([recent, old]);
    const from = new Date(clock.now() - 86_400_000).toISOString();
    expect(await ids(`range=custom&from=${from}`)).toEqual([recent]);
    expect((await request(users.security_reader, 'GET', `/api/actions?view=history&range=day&from=${from}`)).json().code).toBe('invalid_time_range');
    expect((await request(users.security_reader, 'GET', '/api/actions?view=history&range=custom')).json().code).toBe('invalid_time_range');
  });

  it('searches entities by name or path (any case, wildcards literal) or exact SHA-256, in the list and the export', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice();
    const invoice = await ctx().createAction({ deviceId, status: 'queued', type: 'quarantine_file', entity: { name: 'Invoice_100%.PDF.exe', path: '/home/ann/Downloads/Invoice_100%.PDF.exe', sha256: SHA(77) } });
    const other = await ctx().createAction({ deviceId, status: 'queued', type: 'quarantine_file', entity: { name: 'invoiceX100y.pdf.exe', path: '/tmp/invoiceX100y.pdf.exe', sha256: SHA(78) } });
    const ids = async (entity: string) => (await request(users.security_reader, 'GET', `/api/actions?view=history&deviceId=${deviceId}&entity=${encodeURIComponent(entity)}`)).json().items.map((a: { id: string }) => a.id);
    expect(await ids('invoice')).toEqual([other, invoice]);
    expect(await ids('_100%')).toEqual([invoice]);
    expect(await ids('downloads/')).toEqual([invoice]);
    expect(await ids(SHA(78).toUpperCase())).toEqual([other]);
    expect(await ids('nothing like it')).toEqual([]);
    const csv = (await request(users.security_reader, 'GET', `/api/actions/export.csv?deviceId=${deviceId}&entity=_100%25`)).body;
    expect(csv).toContain(invoice);
    expect(csv).not.toContain(other);
  });

  it('exports History as CSV with formulas defused and pending actions left out', async () => {
    const { users, request } = ctx();
    const deviceId = await ctx().createDevice({ name: '=cmd|calc' });
    const queued = await ctx().createAction({ deviceId, status: 'queued', type: 'quarantine_file', entity: { name: '=HYPERLINK("http://x","a, b")', sha256: SHA(9) } });
    const pending = await ctx().createAction({ deviceId });
    const res = await request(users.security_reader, 'GET', `/api/actions/export.csv?deviceId=${deviceId}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/csv');
    const lines = res.body.trim().split('\r\n');
    expect(lines[0]).toMatch(/^id,type,status,/);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(queued);
    expect(lines[1]).toContain(`"'=HYPERLINK(""http://x"",""a, b"")"`);
    expect(lines[1]).toContain(`"'=cmd|calc"`);
    expect(res.body).not.toContain(pending);
  });

  it('summarises pending actions by type with the oldest age', async () => {
    const { users, request } = ctx();
    const res = await request(users.security_reader, 'GET', '/api/actions/summary');
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.pendingTotal).toBe(body.pendingByType.reduce((s: number, p: { count: number }) => s + p.count, 0));
    expect(body.pendingTotal).toBeGreaterThan(0);
    expect(body.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(0);
    const activity = await request(users.security_reader, 'GET', '/api/actions/activity');
    expect(activity.statusCode).toBe(200);
    expect(activity.json().byStatusPerDay.length).toBeGreaterThan(0);
  });

  it('says in the summary how many queued actions wait for devices out of contact, on how many, and when one was last seen', async () => {
    const { services, request } = ctx();
    const group = await services.devices.createGroup(systemActor(), { name: 'far-away', rank: 31, automationLevel: 'semi_any_folder' });
    const analyst = await createUser(services, 'security_reader', 'far-away-reader', [group.id]);
    const offline = async () => (await request(analyst, 'GET', '/api/actions/summary')).json().queuedOffline;
    expect(await offline()).toEqual({ actions: 0, devices: 0, lastSeenAt: null });

    const { publicKey } = generateKeyPairSync('ed25519');
    const { secret } = await services.agents.createEnrolmentToken(systemActor(), { name: 'far', uses: 1, expiresInDays: 1 });
    const { deviceId } = await services.agents.enrol({
      token: secret, publicKey: { kty: 'OKP', crv: 'Ed25519', x: (publicKey.export({ format: 'jwk' }) as Ed25519PublicJwk).x },
      facts: { hostname: 'far-host', platform: 'linux', os: 'test', kernel: 'test', ips: [], macs: [], agentVersion: 'test' },
    }, null);
    await request(ctx().users.security_admin, 'PATCH', `/api/devices/${deviceId}`, { groupId: group.id });
    await services.agents.touch([deviceId]);
    const heardAt = new Date(ctx().clock.now()).toISOString();
    await ctx().createAction({ type: 'run_antivirus_scan', deviceId, status: 'queued' });
    await ctx().createAction({ type: 'collect_investigation_package', deviceId, status: 'queued' });
    // Its agent was just heard from: the actions are on their way, not waiting for it.
    expect(await offline()).toEqual({ actions: 0, devices: 0, lastSeenAt: null });
    ctx().clock.advance(DEVICE_OFFLINE_AFTER_MS + 1000);
    expect(await offline()).toEqual({ actions: 2, devices: 1, lastSeenAt: heardAt });
    // The device counts them too, apart from those waiting for approval.
    await ctx().createAction({ type: 'isolate_device', deviceId });
    expect((await request(analyst, 'GET', `/api/devices/${deviceId}`)).json()).toMatchObject({ health: 'offline', queuedActions: 2, pendingActions: 1 });
    // A device with no agent at all waits for ever.
    await ctx().createAction({ type: 'run_antivirus_scan', deviceId: await ctx().createDevice({ groupId: group.id }), status: 'queued' });
    expect(await offline()).toEqual({ actions: 3, devices: 2, lastSeenAt: heardAt });
  });

  it('keeps scoped users inside their device groups: lists, counts, exports, gets and decisions', async () => {
    const { services, request } = ctx();
    const red = await services.devices.createGroup(systemActor(), { name: 'red', rank: 10, automationLevel: 'semi_any_folder' });
    const blue = await services.devices.createGroup(systemActor(), { name: 'blue', rank: 5, automationLevel: 'full' });
    const redUser = await createUser(services, 'security_operator', 'red-analyst', [red.id]);
    const redDevice = await ctx().createDevice({ groupId: red.id });
    const blueDevice = await ctx().createDevice({ groupId: blue.id });
    const redAction = await ctx().createAction({ deviceId: redDevice, type: 'restrict_code_execution' });
    const blueAction = await ctx().createAction({ deviceId: blueDevice, type: 'restrict_code_execution' });

    const list = await request(redUser, 'GET', '/api/actions?view=pending&type=restrict_code_execution&withTotal=true');
    expect(list.json().items.map((a: { id: string }) => a.id)).toEqual([redAction]);
    expect(list.json().total).toBe(1);
    expect((await request(redUser, 'GET', `/api/actions/${blueAction}`)).statusCode).toBe(404);
    expect((await request(redUser, 'GET', `/api/devices/${blueDevice}`)).statusCode).toBe(404);
    expect((await request(redUser, 'GET', '/api/devices')).json().items.map((d: { id: string }) => d.id)).toEqual([redDevice]);
    expect((await request(redUser, 'POST', '/api/actions/approve', { ids: [blueAction] })).statusCode).toBe(404);
    const summary = (await request(redUser, 'GET', '/api/actions/summary')).json();
    expect(summary.pendingTotal).toBe(1);
    await request(ctx().users.security_operator, 'POST', '/api/actions/reject', { ids: [blueAction] });
    expect((await request(redUser, 'GET', '/api/actions/export.csv')).body).not.toContain(blueAction);
    const create = await request(redUser, 'POST', '/api/actions', { type: 'isolate_device', deviceId: blueDevice, entity: { name: 'x' }, source: 'manual' });
    expect(create.statusCode).toBe(404);
    expect((await request(redUser, 'POST', '/api/actions/approve', { ids: [redAction] })).statusCode).toBe(200);
  });

  it('reports actions by status and type on /metrics to a caller holding metrics:read', async () => {
    const res = await ctx().request(ctx().users.security_reader, 'GET', '/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/quell_actions\{status="pending_approval",type="isolate_device"\} \d+/);
    expect(res.body).toContain('quell_action_decision_latency_seconds_bucket');
    expect(res.body).toContain('quell_pending_oldest_age_seconds');
  });
});
