import { readFileSync } from 'node:fs';
import { AGENT_PROTOCOL_VERSION, type EvidenceReport } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { enrolTestAgent, signedByAgent, type TestAgent } from '../../test/agents.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';

/** The EICAR test file's hashes: what Wazuh's VirusTotal alert names by SHA-1 and MD5. */
const EICAR = { sha256: '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f', sha1: '3395856ce81f2b7382dee72602f798b642f14140', md5: '44d88612fea8a8f36de82e1278abb02f' };
const NO_EVIDENCE: Omit<EvidenceReport, 'files'> = { processes: [], persistence: [], leftOut: 0 };

interface Entity { path: string | null; value: string; kind: string; verdict: string | null; reason: string | null; facts: string[]; actionId: string | null }

/**
 * Verdicts from all the evidence: a file an alert knows only by SHA-1, MD5
 * or path is hashed on its device and judged like any other; engines'
 * detections, packages, Quell's own files, indicators by any hash and how
 * common a hash is in the fleet each count; and every verdict lists the
 * facts it weighed.
 */
describe(`verdicts from every fact about a file (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  let n = 0;
  const hex = (length: number) => (++n).toString(16).padStart(length, 'c');
  const admin = () => ctx().users.security_admin;
  const detail = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`)).json();

  /** A device with an agent, in a group where every remediation waits for an analyst. */
  async function device(name: string): Promise<TestAgent> {
    const agent = await enrolTestAgent(ctx(), name);
    const group = (await ctx().services.devices.createGroup(admin().actor, { name: `ask-${++n}`, rank: n, automationLevel: 'semi_any_folder' })).id;
    expect((await ctx().request(admin(), 'PATCH', `/api/devices/${agent.deviceId}`, { groupId: group })).statusCode).toBe(200);
    return agent;
  }
  async function investigationOf(agent: TestAgent): Promise<string> {
    await ctx().services.investigations.runDue();
    const items = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    return items.find((i) => i.deviceId === agent.deviceId)!.id;
  }
  async function alert(agent: TestAgent, severity: string, evidence: unknown[]): Promise<void> {
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Suspicious file', severity, category: 'malware', detectionSource: 'edr-rules', deviceId: agent.deviceId, occurredAt: '2026-11-01T11:00:00Z', evidence,
    });
    expect(response.statusCode, response.body).toBe(201);
  }
  /** The agent answers the evidence request with this report; returns the paths it was asked to hash. */
  async function answer(agent: TestAgent, id: string, report: EvidenceReport): Promise<string[]> {
    const asked = (await detail(id)).actions.find((a: { type: string }) => a.type === 'collect_evidence');
    await ctx().services.agents.result(agent.deviceId, signedByAgent(agent.key, { v: AGENT_PROTOCOL_VERSION, deviceId: agent.deviceId, actionId: asked.id, outcome: 'completed', output: JSON.stringify(report), iat: 0 }));
    ctx().clock.advance(1_500);
    await ctx().services.investigations.runDue();
    return asked.parameters.paths as string[];
  }
  const entityAt = (seen: { entities: Entity[] }, path: string) => seen.entities.find((e) => e.path === path)!;
  const logOf = (seen: { log: Array<{ step: string; result: string }> }, step: string) => seen.log.filter((l) => l.step === step).map((l) => l.result).join('\n');

  it("hashes on the device the file of Wazuh's documented VirusTotal alert, known only by SHA-1 and MD5, and proposes its quarantine by SHA-256", async () => {
    const agent = await device('Ubuntu');
    const document = JSON.parse(readFileSync(new URL('../alerts/corpus/wazuh/virustotal-positive.json', import.meta.url), 'utf8')) as unknown;
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts/wazuh', document)).statusCode).toBe(201);
    const id = await investigationOf(agent);
    const path = '/media/user/software/eicar.com';
    expect((await detail(id)).entities).toEqual([expect.objectContaining({ path, value: `sha1:${EICAR.sha1}`, verdict: null })]);

    expect(await answer(agent, id, { ...NO_EVIDENCE, files: [{ path, ...EICAR }] })).toEqual([path]);
    const seen = await detail(id);
    expect(seen.entities).toHaveLength(1);
    expect(entityAt(seen, path)).toMatchObject({ kind: 'file', value: EICAR.sha256, verdict: 'malicious', reason: 'built-in signature EICAR-Test-File' });
    expect(entityAt(seen, path).facts).toEqual([
      'built-in signature EICAR-Test-File', '66 of 68 engines flag it (virustotal)', 'no persistence launches it', 'named by a high-severity alert', 'seen on no other device in the fleet',
    ]);
    expect(logOf(seen, 'evidence')).toContain(`hashed on the device: ${path} is SHA-256 ${EICAR.sha256}`);
    expect(logOf(seen, 'verdicts')).toContain(`${path}: malicious (built-in signature EICAR-Test-File)`);
    const quarantine = seen.actions.find((a: { type: string }) => a.type === 'quarantine_file');
    expect(quarantine).toMatchObject({ status: 'pending_approval', entity: { name: 'eicar.com', path, sha256: EICAR.sha256 } });
  });

  it('weighs engines’ detections, and keeps a file that no longer has the hashes its alert gives from being quarantined', async () => {
    const agent = await device('scanned');
    const [many, few, changed] = ['/srv/drop/many.bin', '/srv/drop/few.bin', '/srv/drop/changed.bin'];
    const hashes = { many: { sha256: hex(64), sha1: hex(40), md5: hex(32) }, few: { sha256: hex(64), sha1: hex(40), md5: hex(32) }, changed: { sha256: hex(64), sha1: hex(40), md5: hex(32) } };
    await alert(agent, 'low', [
      { kind: 'file', path: many, sha1: hashes.many.sha1, detections: { engine: 'VirusTotal', positives: 7, total: 70 } },
      { kind: 'file', path: few, md5: hashes.few.md5, detections: { engine: 'VirusTotal', positives: 2, total: 70 } },
      { kind: 'file', path: changed, sha1: hex(40), detections: { engine: 'VirusTotal', positives: 40, total: 70 } },
    ]);
    const id = await investigationOf(agent);
    await answer(agent, id, { ...NO_EVIDENCE, files: [{ path: many, ...hashes.many }, { path: few, ...hashes.few }, { path: changed, ...hashes.changed }] });

    const seen = await detail(id);
    expect(entityAt(seen, many)).toMatchObject({ value: hashes.many.sha256, verdict: 'malicious', reason: '7 of 70 engines flag it (VirusTotal)' });
    expect(entityAt(seen, few)).toMatchObject({ value: hashes.few.sha256, verdict: 'suspicious', reason: '2 of 70 engines flag it (VirusTotal)' });
    // The file at that path is another one now: judged as the alert knows it, and not quarantined in its place.
    expect(entityAt(seen, changed)).toMatchObject({ value: expect.stringMatching(/^sha1:/), verdict: 'malicious', actionId: null });
    expect(logOf(seen, 'evidence')).toContain(`${changed} no longer has the SHA-1 the alert gives: judged as the alert knows it`);
    expect(logOf(seen, 'remediate')).toContain(`scanned: ${changed} not proposed: the device has not hashed it, and a quarantine needs its SHA-256`);
    expect(seen.actions.filter((a: { type: string }) => a.type === 'quarantine_file').map((a: { entity: { path: string } }) => a.entity.path).sort()).toEqual([few, many]);
  });

  it("judges packages' unchanged files and Quell's own files no threat, a changed package file by its alert, and matches indicators by SHA-1", async () => {
    const agent = await device('packaged');
    const files = { unchanged: '/usr/sbin/cron', changed: '/usr/sbin/sshd', quell: '/opt/quell/bin/node', listed: '/opt/tools/nc' };
    const h = Object.fromEntries(Object.keys(files).map((k) => [k, { sha256: hex(64), sha1: hex(40), md5: hex(32) }])) as Record<keyof typeof files, { sha256: string; sha1: string; md5: string }>;
    // Block indicators would make any of them malicious: Quell's own files are never remediated all the same.
    expect((await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha256', value: h.quell.sha256, action: 'block', title: 'mistaken block' })).statusCode).toBe(201);
    expect((await ctx().request(admin(), 'POST', '/api/indicators', { type: 'sha1', value: h.listed.sha1, action: 'block', title: 'netcat build used by the intruder' })).statusCode).toBe(201);
    await alert(agent, 'high', Object.entries(files).map(([k, path]) => ({ kind: 'file', path, sha256: h[k as keyof typeof files].sha256 })));
    const id = await investigationOf(agent);
    await answer(agent, id, {
      ...NO_EVIDENCE,
      files: [
        { path: files.unchanged, ...h.unchanged, owner: { kind: 'package', manager: 'dpkg', name: 'cron', verified: true } },
        { path: files.changed, ...h.changed, owner: { kind: 'package', manager: 'dpkg', name: 'openssh-server', verified: false } },
        { path: files.quell, ...h.quell, owner: { kind: 'quell' } },
        { path: files.listed, ...h.listed },
      ],
    });

    const seen = await detail(id);
    expect(entityAt(seen, files.unchanged)).toMatchObject({ verdict: 'no_threats_found', reason: 'installed by the dpkg package cron and unchanged since' });
    expect(entityAt(seen, files.changed)).toMatchObject({ verdict: 'suspicious', reason: 'named by a high-severity alert' });
    expect(entityAt(seen, files.changed).facts).toContain('installed by the dpkg package openssh-server, changed since (its checksum no longer matches)');
    expect(entityAt(seen, files.quell)).toMatchObject({ verdict: 'no_threats_found', reason: "Quell's own file: never remediated" });
    expect(entityAt(seen, files.listed)).toMatchObject({ verdict: 'malicious', reason: 'block indicator "netcat build used by the intruder"' });
    expect(seen.actions.filter((a: { type: string }) => a.type !== 'collect_evidence').map((a: { entity: { path: string } }) => a.entity.path).sort()).toEqual([files.listed, files.changed]);
  });

  it('does not count a medium alert against a file common in the fleet, and does against a rare one', async () => {
    const common = hex(64);
    const rare = hex(64);
    for (let i = 0; i < 10; i++) {
      const other = await device(`fleet-${i}`);
      await alert(other, 'informational', [{ kind: 'file', path: '/opt/app/bin/agentd', sha256: common }]);
    }
    const agent = await device('odd-one');
    await alert(agent, 'medium', [{ kind: 'file', path: '/opt/app/bin/agentd', sha256: common }, { kind: 'file', path: '/opt/app/bin/helper', sha256: rare }]);
    const id = await investigationOf(agent);
    await answer(agent, id, { ...NO_EVIDENCE, files: [{ path: '/opt/app/bin/agentd', sha256: common }, { path: '/opt/app/bin/helper', sha256: rare }] });

    const seen = await detail(id);
    expect(entityAt(seen, '/opt/app/bin/agentd')).toMatchObject({ verdict: 'no_threats_found', reason: 'named only by medium alerts, and common in the fleet (on 11 devices)' });
    expect(entityAt(seen, '/opt/app/bin/helper')).toMatchObject({ verdict: 'suspicious', reason: 'named by a medium-severity alert' });
    expect(entityAt(seen, '/opt/app/bin/helper').facts).toContain('seen on no other device in the fleet');
  });

  it('judges the processes a malicious file started with it, suspects the loader that started it from a temp folder, and leaves the exploited server and a developer tool alone', async () => {
    const agent = await device('tree');
    const dropper = '/var/tmp/.x/run';
    const h = { dropper: hex(64), miner: hex(64), loader: hex(64), server: hex(64), devtool: hex(64) };
    await alert(agent, 'low', [{ kind: 'file', path: dropper, sha256: h.dropper }]);
    const id = await investigationOf(agent);
    await answer(agent, id, {
      processes: [
        { pid: 100, exe: '/opt/app/bin/server', sha256: h.server, commandLine: '/opt/app/bin/server', ancestors: [1] },
        { pid: 4200, exe: '/tmp/ld', sha256: h.loader, commandLine: '/tmp/ld', ancestors: [100, 1] },
        { pid: 4242, exe: dropper, sha256: h.dropper, commandLine: dropper, ancestors: [4200, 100, 1] },
        // Through a shell the report leaves out (a system executable): still in the dropper's tree.
        { pid: 4300, exe: '/dev/shm/.m/miner', sha256: h.miner, commandLine: '/dev/shm/.m/miner -o pool', ancestors: [4299, 4242, 4200, 100, 1] },
        { pid: 5150, exe: '/tmp/go-build1/b001/exe/devserver', sha256: h.devtool, commandLine: 'devserver', ancestors: [900, 1] },
      ],
      persistence: [{ kind: 'cron', source: '/etc/cron.d/dbus-helper', text: `@reboot root ${dropper}` }],
      files: [{ path: dropper, sha256: h.dropper }],
      leftOut: 0,
    });

    const seen = await detail(id);
    expect(entityAt(seen, dropper)).toMatchObject({ kind: 'process', verdict: 'malicious' });
    expect(entityAt(seen, '/dev/shm/.m/miner')).toMatchObject({ kind: 'process', verdict: 'malicious', reason: `pid 4300: started by pid 4242 (${dropper}), which is malicious` });
    expect(entityAt(seen, '/tmp/ld')).toMatchObject({ verdict: 'suspicious', reason: `pid 4200: in a temp or download folder, and started pid 4242 (${dropper}), which is malicious` });
    expect(entityAt(seen, '/opt/app/bin/server')).toMatchObject({ verdict: 'no_threats_found' });
    expect(entityAt(seen, '/opt/app/bin/server').facts).toContain(`started pid 4242 (${dropper}), which is malicious`);
    expect(seen.entities.some((e: Entity) => e.path === '/tmp/go-build1/b001/exe/devserver')).toBe(false);
    const stopped = seen.actions.filter((a: { type: string }) => a.type === 'stop_and_quarantine_file').map((a: { entity: { path: string } }) => a.entity.path).sort();
    expect(stopped).toEqual(['/dev/shm/.m/miner', '/tmp/ld', dropper].sort());
    expect(logOf(seen, 'evidence')).toContain('1 running from temp or download folders, 3 started by or starting the files the alerts name (1 connected to nothing the alerts name, and not malicious on their own: left alone)');
  });

  it('judges each path a file runs from: a copy that persistence launches is malicious even where another copy of it is left alone', async () => {
    const agent = await device('copies');
    const same = hex(64);
    await alert(agent, 'low', [{ kind: 'file', path: '/srv/notes.txt', sha256: hex(64) }]);
    const id = await investigationOf(agent);
    await answer(agent, id, {
      processes: [
        { pid: 300, exe: '/tmp/build/sleep', sha256: same, commandLine: '/tmp/build/sleep 60' },
        { pid: 301, exe: '/tmp/.k/kthreadd', sha256: same, commandLine: '/tmp/.k/kthreadd' },
      ],
      persistence: [{ kind: 'cron', source: '/etc/cron.d/k', text: '@reboot root /tmp/.k/kthreadd' }],
      files: [],
      leftOut: 0,
    });
    const seen = await detail(id);
    expect(seen.entities.filter((e: Entity) => e.value === same).map((e: Entity) => [e.path, e.verdict])).toEqual([['/tmp/.k/kthreadd', 'malicious']]);
  });

  it('asks the other devices a threat was followed to for their evidence, and stops it and removes its persistence there too', async () => {
    const [here, there] = [await device('first-seen'), await device('also-there')];
    const dropper = '/var/tmp/.x/run';
    const sha256 = hex(64);
    await alert(there, 'informational', [{ kind: 'file', path: dropper, sha256 }]);
    await alert(here, 'high', [{ kind: 'file', path: dropper, sha256 }]);
    const id = await investigationOf(here);
    await answer(here, id, { ...NO_EVIDENCE, files: [{ path: dropper, sha256 }] });
    const asked = (await detail(id)).actions.find((a: { type: string; deviceId: string }) => a.type === 'collect_evidence' && a.deviceId === there.deviceId);
    expect(asked.parameters).toEqual({ paths: [dropper] });
    const report: EvidenceReport = {
      processes: [{ pid: 77, exe: dropper, sha256, commandLine: dropper }],
      persistence: [{ kind: 'cron', source: '/etc/cron.d/x', text: `@reboot root ${dropper}` }],
      files: [{ path: dropper, sha256 }],
      leftOut: 0,
    };
    await ctx().services.agents.result(there.deviceId, signedByAgent(there.key, { v: AGENT_PROTOCOL_VERSION, deviceId: there.deviceId, actionId: asked.id, outcome: 'completed', output: JSON.stringify(report), iat: 0 }));
    ctx().clock.advance(1_500);
    await ctx().services.investigations.runDue();

    const seen = await detail(id);
    expect(logOf(seen, 'evidence_elsewhere')).toContain('evidence from other devices: also-there: 1 running, 1 persistence entry launches malicious files');
    const proposals = seen.actions.filter((a: { type: string; deviceId: string }) => a.type !== 'collect_evidence' && a.deviceId === there.deviceId).map((a: { type: string; entity: unknown; parameters: unknown }) => [a.type, a.entity, a.parameters]);
    expect(proposals).toEqual(expect.arrayContaining([
      ['stop_and_quarantine_file', { name: 'run', path: dropper, sha256 }, {}],
      ['remove_scheduled_task', { name: 'x', path: '/etc/cron.d/x' }, {}],
    ]));
    expect(proposals).toHaveLength(2);
  });
});
