import { AGENT_PROTOCOL_VERSION, type EvidenceReport } from '@quell/contracts';
import { describe, expect, it } from 'vitest';
import { enrolTestAgent, signedByAgent, type TestAgent } from '../../test/agents.ts';
import { TEST_DIALECT, useTestApp } from '../../test/helper.ts';
import { launchersOf } from './launchers.ts';

const DROPPER = '/var/tmp/.x/run';

/**
 * Persistence in an investigation: whatever launches a file counts for its
 * verdict whether an alert named the file or the agent found it, and the
 * launchers of a malicious file are removed next to its quarantine, each as
 * the action whose executor the agent has, each target taken only from what
 * parses into one.
 */
describe(`persistence that launches a file, judged and removed (${TEST_DIALECT})`, () => {
  const ctx = useTestApp();
  let n = 0;
  const hash = () => (++n).toString(16).padStart(64, 'e');
  const detail = async (id: string) => (await ctx().request(ctx().users.security_reader, 'GET', `/api/investigations/${id}`)).json();

  /** A device with an agent in a group that asks an analyst for everything, and its investigation of one low-severity alert. */
  async function investigate(name: string, path: string, sha256: string): Promise<{ agent: TestAgent; id: string }> {
    const agent = await enrolTestAgent(ctx(), name);
    const group = (await ctx().services.devices.createGroup(ctx().users.security_admin.actor, { name: `semi-${++n}`, rank: n, automationLevel: 'semi_any_folder' })).id;
    expect((await ctx().request(ctx().users.security_admin, 'PATCH', `/api/devices/${agent.deviceId}`, { groupId: group })).statusCode).toBe(200);
    const response = await ctx().request(ctx().users.security_operator, 'POST', '/api/alerts', {
      title: 'Executable written to a temp folder', severity: 'low', category: 'persistence', detectionSource: 'edr-rules', deviceId: agent.deviceId,
      occurredAt: '2026-11-01T11:00:00Z', evidence: [{ kind: 'file', path, sha256 }],
    });
    expect(response.statusCode, response.body).toBe(201);
    await ctx().services.investigations.runDue();
    const items = (await ctx().request(ctx().users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string }>;
    return { agent, id: items.find((i) => i.deviceId === agent.deviceId)!.id };
  }
  /** The agent answers the evidence request with this report, and the engine runs on to its proposals. */
  async function answer(agent: TestAgent, id: string, report: EvidenceReport): Promise<void> {
    const asked = (await detail(id)).actions.find((a: { type: string }) => a.type === 'collect_evidence');
    await ctx().services.agents.result(agent.deviceId, signedByAgent(agent.key, { v: AGENT_PROTOCOL_VERSION, deviceId: agent.deviceId, actionId: asked.id, outcome: 'completed', output: JSON.stringify(report), iat: 0 }));
    ctx().clock.advance(1_500);
    await ctx().services.investigations.runDue();
  }
  const proposals = (seen: { actions: Array<{ type: string; status: string; entity: unknown; parameters: unknown }> }) =>
    seen.actions.filter((a) => a.type !== 'collect_evidence').map((a) => ({ type: a.type, status: a.status, entity: a.entity, parameters: a.parameters }));

  it('rates an alert-named executable in /var/tmp malicious for the crontab line, cron.d file and unit that launch it, and proposes removing each next to its quarantine, nothing else', async () => {
    const sha256 = hash();
    const devtool = hash();
    const { agent, id } = await investigate('persisted', DROPPER, sha256);
    await answer(agent, id, {
      processes: [
        { pid: 4242, exe: DROPPER, sha256, commandLine: `${DROPPER} --daemon` },
        // A developer's build tool running from /tmp that nothing launches and no alert names.
        { pid: 5150, exe: '/tmp/go-build4711/b001/exe/devserver', sha256: devtool, commandLine: '/tmp/go-build4711/b001/exe/devserver -port 8080' },
      ],
      persistence: [
        { kind: 'cron', source: '/var/spool/cron/crontabs/root', text: `*/5 * * * * ${DROPPER} >/dev/null 2>&1` },
        { kind: 'cron', source: '/var/spool/cron/crontabs/root', text: '0 3 * * * /usr/local/bin/backup.sh' },
        { kind: 'cron', source: '/etc/cron.d/dbus-helper', text: 'SHELL=/bin/sh' },
        { kind: 'cron', source: '/etc/cron.d/dbus-helper', text: `@reboot root ${DROPPER}` },
        { kind: 'cron', source: '/etc/crontab', text: '17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly' },
        // Names a longer path that starts with the dropper's: not a launcher of it.
        { kind: 'cron', source: '/etc/crontab', text: `@hourly root ${DROPPER}2` },
        { kind: 'systemd', source: '/etc/systemd/system/dbus-helper.service', text: `ExecStart=${DROPPER} --daemon` },
        { kind: 'systemd', source: '/etc/systemd/system/backup.timer', text: 'Unit=backup.service' },
        { kind: 'kernel_module', source: '/proc/modules', text: 'ext4' },
      ],
      files: [{ path: DROPPER, sha256 }],
      leftOut: 0,
    });

    const seen = await detail(id);
    expect(seen.investigation.status).toBe('pending_action');
    const file = seen.entities.find((e: { value: string }) => e.value === sha256);
    expect(file).toMatchObject({
      kind: 'process', verdict: 'malicious',
      reason: 'pid 4242: an executable in a temp or download folder that a persistence entry launches: cron /var/spool/cron/crontabs/root, cron /etc/cron.d/dbus-helper, systemd /etc/systemd/system/dbus-helper.service',
    });
    expect(seen.entities.some((e: { value: string }) => e.value === devtool)).toBe(false);
    expect(proposals(seen)).toEqual(expect.arrayContaining([
      { type: 'stop_and_quarantine_file', status: 'pending_approval', entity: { name: 'run', path: DROPPER, sha256 }, parameters: {} },
      { type: 'remove_scheduled_task', status: 'pending_approval', entity: { name: 'root', path: '/var/spool/cron/crontabs/root' }, parameters: { line: `*/5 * * * * ${DROPPER} >/dev/null 2>&1` } },
      { type: 'remove_scheduled_task', status: 'pending_approval', entity: { name: 'dbus-helper', path: '/etc/cron.d/dbus-helper' }, parameters: {} },
      { type: 'stop_service', status: 'pending_approval', entity: { name: 'dbus-helper.service' }, parameters: { removeUnitFile: true } },
    ]));
    expect(proposals(seen)).toHaveLength(4);
    for (const action of seen.actions.filter((a: { type: string }) => a.type !== 'collect_evidence' && a.type !== 'stop_and_quarantine_file')) {
      expect(action.comment).toMatch(new RegExp(`^malicious: .* launches ${DROPPER.replaceAll('.', '\\.')}, which is malicious$`));
    }
    const evidence = seen.log.find((l: { step: string; result: string }) => l.step === 'evidence' && l.result.startsWith('evidence from the agent'));
    expect(evidence.result).toBe('evidence from the agent: 2 processes and 9 persistence entries looked at, 1 running from temp or download folders (1 connected to nothing the alerts name, and not malicious on their own: left alone)');
    expect(seen.log.find((l: { step: string }) => l.step === 'verdicts').result).toBe('1 malicious, 0 suspicious, 0 with no threats found; 3 persistence entries launch malicious files. '
      + `${DROPPER}: malicious (pid 4242: an executable in a temp or download folder that a persistence entry launches: `
      + 'cron /var/spool/cron/crontabs/root, cron /etc/cron.d/dbus-helper, systemd /etc/systemd/system/dbus-helper.service)');
    // The evidence tab lists every fact the verdict weighed.
    expect(seen.entities.find((e: { path: string }) => e.path === DROPPER).facts).toEqual([
      'in a temp or download folder', 'in a hidden folder', 'running as pid 4242',
      'launched by cron /var/spool/cron/crontabs/root, cron /etc/cron.d/dbus-helper, systemd /etc/systemd/system/dbus-helper.service',
      'named by a low-severity alert', 'seen on no other device in the fleet',
    ]);

    // Rejected, a launcher's removal is not proposed again when the investigation runs again with nothing new.
    const line = seen.actions.find((a: { type: string; parameters: { line?: string } }) => a.type === 'remove_scheduled_task' && a.parameters.line !== undefined);
    expect((await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/reject', { ids: [line.id], comment: 'the admin\'s own job' })).statusCode).toBe(200);
    expect((await ctx().request(ctx().users.security_admin, 'POST', '/api/investigations', { deviceId: agent.deviceId })).statusCode).toBe(201);
    ctx().clock.advance(1_500);
    await ctx().services.investigations.runDue();
    const again = (await detail(id)).actions.filter((a: { type: string }) => a.type === 'remove_scheduled_task');
    expect(again.map((a: { status: string }) => a.status).sort()).toEqual(['pending_approval', 'rejected']);
  });

  it('proposes nothing for a developer tool running from /tmp that nothing launches and no alert names, beside an unrelated cron line', async () => {
    const notes = hash();
    const { agent, id } = await investigate('developer', '/home/dev/notes.txt', notes);
    await answer(agent, id, {
      processes: [{ pid: 77, exe: '/tmp/node-dev/bin/watch', sha256: hash(), commandLine: '/tmp/node-dev/bin/watch --poll' }],
      persistence: [{ kind: 'cron', source: '/var/spool/cron/crontabs/dev', text: '*/10 * * * * /home/dev/bin/sync-notes' }],
      files: [{ path: '/home/dev/notes.txt', sha256: notes }],
      leftOut: 0,
    });
    const seen = await detail(id);
    expect(seen.investigation.status).toBe('no_threats_found');
    expect(seen.entities.map((e: { kind: string; path: string; verdict: string }) => [e.kind, e.path, e.verdict])).toEqual([['file', '/home/dev/notes.txt', 'no_threats_found']]);
    expect(proposals(seen)).toEqual([]);
  });
});

describe('the launchers of an executable, from an evidence report', () => {
  const report = (persistence: EvidenceReport['persistence'], leftOut = 0): EvidenceReport => ({ processes: [], persistence, files: [], leftOut });

  it('removes a line of a cron.d file that also runs other jobs, and the whole file when it holds only jobs running the file', () => {
    const found = launchersOf(report([
      { kind: 'cron', source: '/etc/cron.d/mixed', text: `@reboot root ${DROPPER}` },
      { kind: 'cron', source: '/etc/cron.d/mixed', text: '0 1 * * * root /usr/sbin/logrotate /etc/logrotate.conf' },
      { kind: 'cron', source: '/etc/cron.d/only', text: `* * * * * root ${DROPPER}` },
      { kind: 'cron', source: '/etc/cron.d/only', text: `@reboot root "${DROPPER}" &` },
    ]), [DROPPER]).get(DROPPER)!;
    expect(found.map((l) => [l.type, l.entity, l.parameters])).toEqual([
      ['remove_scheduled_task', { name: 'mixed', path: '/etc/cron.d/mixed' }, { line: `@reboot root ${DROPPER}` }],
      ['remove_scheduled_task', { name: 'only', path: '/etc/cron.d/only' }, {}],
    ]);
  });

  it('removes only lines of a cron.d file when the report was cut, since lines of it may be missing', () => {
    const found = launchersOf(report([{ kind: 'cron', source: '/etc/cron.d/only', text: `@reboot root ${DROPPER}` }], 3), [DROPPER]).get(DROPPER)!;
    expect(found.map((l) => l.parameters)).toEqual([{ line: `@reboot root ${DROPPER}` }]);
  });

  it('stops a service and removes its unit file, masks one where the agent removes no unit files, and removes the timer that starts it', () => {
    const found = launchersOf(report([
      { kind: 'systemd', source: '/etc/systemd/system/helper.service', text: `ExecStart=-${DROPPER} --daemon` },
      { kind: 'systemd', source: '/etc/systemd/system/helper.timer', text: 'Unit=helper.service' },
      { kind: 'systemd', source: '/lib/systemd/system/vendor.service', text: `ExecStartPre=${DROPPER}` },
      { kind: 'systemd', source: '/etc/systemd/system/other.timer', text: 'Unit=other.service' },
    ]), [DROPPER]).get(DROPPER)!;
    expect(found.map((l) => [l.type, l.entity, l.parameters])).toEqual([
      ['stop_service', { name: 'helper.service' }, { removeUnitFile: true }],
      ['stop_service', { name: 'vendor.service' }, { mask: true }],
      ['remove_scheduled_task', { name: 'helper.timer' }, {}],
    ]);
  });

  it('removes startup lines that run or load the file by line, and a profile.d file whole when every line of it runs the file', () => {
    const lib = '/dev/shm/.lib/libhide.so';
    const found = launchersOf(report([
      { kind: 'startup', source: '/etc/bash.bashrc', text: `(${DROPPER} &) 2>/dev/null` },
      { kind: 'startup', source: '/home/eve/.ssh/authorized_keys', text: `command="${DROPPER}" ssh-ed25519 AAAAC3Nx backdoor` },
      { kind: 'startup', source: '/etc/ld.so.preload', text: '/usr/lib/libfast.so' },
      { kind: 'startup', source: '/etc/ld.so.preload', text: lib },
      { kind: 'startup', source: '/etc/profile.d/zz-helper.sh', text: `nohup ${DROPPER} >/dev/null 2>&1 &` },
      { kind: 'startup', source: '/etc/profile.d/mixed.sh', text: 'export HELPER=1' },
      { kind: 'startup', source: '/etc/profile.d/mixed.sh', text: `${DROPPER} &` },
    ]), [DROPPER, lib]);
    expect(found.get(DROPPER)!.map((l) => [l.type, l.entity, l.parameters])).toEqual([
      ['remove_persistence', { name: 'bash.bashrc', path: '/etc/bash.bashrc' }, { line: `(${DROPPER} &) 2>/dev/null` }],
      ['remove_persistence', { name: 'authorized_keys', path: '/home/eve/.ssh/authorized_keys' }, { line: `command="${DROPPER}" ssh-ed25519 AAAAC3Nx backdoor` }],
      ['remove_persistence', { name: 'zz-helper.sh', path: '/etc/profile.d/zz-helper.sh' }, {}],
      ['remove_persistence', { name: 'mixed.sh', path: '/etc/profile.d/mixed.sh' }, { line: `${DROPPER} &` }],
    ]);
    expect(found.get(lib)!.map((l) => [l.type, l.entity, l.parameters])).toEqual([['remove_persistence', { name: 'ld.so.preload', path: '/etc/ld.so.preload' }, { line: lib }]]);
  });

  it('removes ld.so.preload whole when it loads only the file, and the udev rules, apt hooks, motd scripts and autostart entries that run it', () => {
    const lib = '/usr/lib/.x/libx.so';
    const found = launchersOf(report([
      { kind: 'startup', source: '/etc/ld.so.preload', text: lib },
      { kind: 'startup', source: '/etc/udev/rules.d/99-usb.rules', text: `ACTION=="add", SUBSYSTEM=="usb", RUN+="${DROPPER}"` },
      { kind: 'startup', source: '/etc/apt/apt.conf.d/01-update', text: `APT::Update::Pre-Invoke {"${DROPPER} || true";};` },
      { kind: 'startup', source: '/etc/update-motd.d/99-banner', text: `${DROPPER} &` },
      { kind: 'startup', source: '/etc/update-motd.d/99-banner', text: 'echo welcome' },
      { kind: 'startup', source: '/home/eve/.config/autostart/helper.desktop', text: '[Desktop Entry]' },
      { kind: 'startup', source: '/home/eve/.config/autostart/helper.desktop', text: 'Type=Application' },
      { kind: 'startup', source: '/home/eve/.config/autostart/helper.desktop', text: `Exec=${DROPPER}` },
      { kind: 'startup', source: '/etc/xdg/autostart/sub/x.desktop', text: `Exec=${DROPPER}` },
    ]), [DROPPER, lib]);
    expect(found.get(lib)!.map((l) => [l.type, l.entity, l.parameters])).toEqual([['remove_persistence', { name: 'ld.so.preload', path: '/etc/ld.so.preload' }, {}]]);
    expect(found.get(DROPPER)!.map((l) => [l.type, l.entity, l.parameters])).toEqual([
      ['remove_persistence', { name: '99-usb.rules', path: '/etc/udev/rules.d/99-usb.rules' }, {}],
      ['remove_persistence', { name: '01-update', path: '/etc/apt/apt.conf.d/01-update' }, {}],
      ['remove_persistence', { name: '99-banner', path: '/etc/update-motd.d/99-banner' }, { line: `${DROPPER} &` }],
      ['remove_persistence', { name: 'helper.desktop', path: '/home/eve/.config/autostart/helper.desktop' }, {}],
    ]);
  });

  it('removes a run-parts script whole when it only runs the file, and a timer that names no unit with the service of its name', () => {
    const found = launchersOf(report([
      { kind: 'cron', source: '/etc/cron.daily/logrotate-helper', text: `${DROPPER} >/dev/null 2>&1 &` },
      { kind: 'cron', source: '/etc/cron.weekly/report', text: 'cd /srv/reports' },
      { kind: 'cron', source: '/etc/cron.weekly/report', text: `${DROPPER} --weekly` },
      { kind: 'systemd', source: '/etc/systemd/system/apt-daily-check.service', text: `ExecStart=${DROPPER}` },
      { kind: 'systemd', source: '/etc/systemd/system/apt-daily-check.timer', text: '' },
    ]), [DROPPER]).get(DROPPER)!;
    expect(found.map((l) => [l.type, l.entity, l.parameters])).toEqual([
      ['remove_scheduled_task', { name: 'logrotate-helper', path: '/etc/cron.daily/logrotate-helper' }, {}],
      ['remove_scheduled_task', { name: 'report', path: '/etc/cron.weekly/report' }, { line: `${DROPPER} --weekly` }],
      ['stop_service', { name: 'apt-daily-check.service' }, { removeUnitFile: true }],
      ['remove_scheduled_task', { name: 'apt-daily-check.timer' }, {}],
    ]);
  });

  it('proposes nothing from text that does not parse into a target the agent accepts', () => {
    const found = launchersOf(report([
      { kind: 'cron', source: '/etc/cron.d/../crontab', text: `* * * * * root ${DROPPER}` },
      { kind: 'cron', source: '/etc/cron.d/.hidden', text: `* * * * * root ${DROPPER}` },
      { kind: 'cron', source: '/home/eve/crontab', text: `* * * * * ${DROPPER}` },
      { kind: 'cron', source: '/etc/crontab', text: `* * * * * root ${DROPPER}\r` },
      { kind: 'cron', source: '/etc/crontab', text: `* * * * * root ${DROPPER} ${'x'.repeat(1000)}` },
      { kind: 'systemd', source: '/etc/systemd/system/bad name.service', text: `ExecStart=${DROPPER}` },
      { kind: 'systemd', source: '/etc/systemd/system/ok.service', text: `Description=${DROPPER}` },
      { kind: 'kernel_module', source: '/proc/modules', text: DROPPER },
      { kind: 'startup', source: '/etc/motd', text: DROPPER },
      { kind: 'startup', source: '/home/eve/../../etc/profile', text: DROPPER },
      { kind: 'startup', source: '/home/eve/notes/.bashrc', text: DROPPER },
      { kind: 'startup', source: '/etc/profile.d/sub/x.sh', text: DROPPER },
    ]), [DROPPER]).get(DROPPER)!;
    expect(found).toEqual([]);
  });
});
