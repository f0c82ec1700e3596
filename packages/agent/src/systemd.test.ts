import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { type SystemdContainer, bootSystemd } from './test/systemd-lab.ts';
import { type AgentProcess, quell, waitFor, waitForAction } from './test/helper.ts';

/**
 * Stop service and remove scheduled task against a real systemd and a real
 * cron daemon: a container boots Debian's systemd as its PID 1, the bundled
 * agent runs inside it, actions go through the real server, and every effect
 * is observed from outside the agent (systemctl, the unit folders, files the
 * services and jobs write).
 */
describe(`services, timers and cron jobs on a real systemd (${TEST_DIALECT})`, () => {
  let ctx: TestContext;
  let box: SystemdContainer;
  let agent: AgentProcess;
  let deviceId: string;
  const work = mkdtempSync(join(tmpdir(), 'quell-systemd-'));

  beforeAll(async () => {
    box = await bootSystemd([work]);
    ctx = await setupTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
    const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name: 'systemd', uses: 1, expiresInDays: 1 });
    const out = await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', join(work, 'agent')]);
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    agent = box.spawnAgent(join(work, 'agent'));
    await waitFor('the agent to connect', async () => (agent.log().includes('"msg":"connected"') ? true : undefined), 30_000);
  }, 240_000);

  afterAll(async () => {
    await agent?.stop();
    await box?.close();
    await ctx?.close();
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  async function act(type: string, entity: Record<string, string>, parameters: Record<string, unknown> = {}): Promise<string> {
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', { type, deviceId, source: 'manual', entity, parameters });
    expect(created.statusCode, created.body).toBe(201);
    const done = await waitForAction(ctx, created.json().id, undefined, 60_000);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    return done.id;
  }
  async function undo(id: string, by = ctx.users.security_operator): Promise<string> {
    const response = await ctx.request(by, 'POST', '/api/actions/undo', { ids: [id] });
    expect(response.statusCode, response.body).toBe(200);
    const done = await waitForAction(ctx, response.json().items[0].id, undefined, 60_000);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    return done.result?.output ?? '';
  }
  /** Every unit link systemd's enable, disable and mask manage, as `path -> target`. */
  const unitLinks = () => box.sh('find /etc/systemd/system /run/systemd/system -type l -printf "%p -> %l\\n" | sort');
  const unitStates = async (...units: string[]) => {
    const states: Record<string, string> = {};
    for (const unit of units) {
      states[unit] = `${(await box.run('systemctl', ['is-active', unit])).stdout.trim()} ${(await box.run('systemctl', ['is-enabled', unit])).stdout.trim()}`;
    }
    return states;
  };

  /** Connects to the service's socket from inside the container: `connected`, or the error's code. */
  const connectToSocket = async () => (await box.run(process.execPath, ['-e', `
    require('node:net').connect('/run/lab-web.sock')
      .on('connect', () => { console.log('connected'); process.exit(0); })
      .on('error', (error) => { console.log(error.code); process.exit(0); });`])).stdout.trim();

  it('stop service also stops what activates it (socket, path): nothing starts it again; undo puts back the exact unit links and states', async () => {
    await box.sh(`
      cat > /etc/systemd/system/lab-web.service <<'EOF'
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
EOF
      cat > /etc/systemd/system/lab-web.socket <<'EOF'
[Socket]
ListenStream=/run/lab-web.sock
[Install]
WantedBy=sockets.target
EOF
      cat > /etc/systemd/system/lab-web.path <<'EOF'
[Path]
PathExists=/run/lab-web.trigger
[Install]
WantedBy=paths.target
EOF
      systemctl daemon-reload
      # The socket first: systemd refuses to start a socket whose service already runs without it.
      systemctl enable --now lab-web.socket lab-web.path
      systemctl enable --now lab-web.service
      # A link that [Install] does not describe: an administrator's, or an attacker's.
      mkdir -p /etc/systemd/system/graphical.target.wants
      ln -s /etc/systemd/system/lab-web.service /etc/systemd/system/graphical.target.wants/lab-web.service
      systemctl daemon-reload`);
    const units = ['lab-web.service', 'lab-web.socket', 'lab-web.path'];
    const linksBefore = await unitLinks();
    const statesBefore = await unitStates(...units);
    expect(statesBefore).toEqual({ 'lab-web.service': 'active enabled', 'lab-web.socket': 'active enabled', 'lab-web.path': 'active enabled' });
    expect(linksBefore).toContain('graphical.target.wants/lab-web.service');
    expect(await connectToSocket()).toBe('connected');

    const stopped = await act('stop_service', { name: 'lab-web.service' });
    expect(await unitStates(...units)).toEqual({ 'lab-web.service': 'inactive disabled', 'lab-web.socket': 'inactive disabled', 'lab-web.path': 'inactive disabled' });
    expect(await unitLinks()).not.toContain('lab-web');
    // What used to bring the service back does nothing now: nobody listens on the socket, and the path it watched is ignored.
    expect(await connectToSocket()).toBe('ECONNREFUSED');
    await box.sh('touch /run/lab-web.trigger');
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await box.run('systemctl', ['is-active', 'lab-web.service'])).stdout.trim()).toBe('inactive');
    await box.sh('rm /run/lab-web.trigger');

    const output = await undo(stopped);
    expect(output).toMatch(/^Restored lab-web\.service/);
    expect(await unitLinks()).toBe(linksBefore);
    expect(await unitStates(...units)).toEqual(statesBefore);
    expect(await connectToSocket()).toBe('connected');
  });

  it('stop service with mask, its unit file in /etc/systemd/system where systemctl cannot mask: masked all the same, nothing can start it; undo unmasks and starts it', async () => {
    await box.sh(`
      printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/lab-masked.service
      systemctl daemon-reload
      systemctl enable --now lab-masked.service`);
    const linksBefore = await unitLinks();
    const stopped = await act('stop_service', { name: 'lab-masked.service' }, { mask: true });
    expect(await unitStates('lab-masked.service')).toEqual({ 'lab-masked.service': 'inactive masked' });
    expect((await box.run('systemctl', ['start', 'lab-masked.service'])).stderr).toMatch(/masked/);
    await undo(stopped);
    expect(await unitStates('lab-masked.service')).toEqual({ 'lab-masked.service': 'active enabled' });
    expect(await unitLinks()).toBe(linksBefore);
  });

  it('a stopped service started and enabled again while the agent runs is stopped and disabled again within seconds, and the action says so', async () => {
    await box.sh(`
      printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n' > /etc/systemd/system/lab-back.service
      systemctl daemon-reload
      systemctl enable --now lab-back.service`);
    const stopped = await act('stop_service', { name: 'lab-back.service' });
    expect(await unitStates('lab-back.service')).toEqual({ 'lab-back.service': 'inactive disabled' });

    await box.sh('systemctl enable --now lab-back.service');
    await waitFor('the agent to stop the service again', async () => ((await unitStates('lab-back.service'))['lab-back.service'] === 'inactive disabled' ? true : undefined));
    const drift = await waitFor('the drift to be reported', async () => (await ctx.services.actions.get(ctx.users.security_reader.actor, stopped)).drift[0]);
    // `enable --now` enables, then starts: the watch may catch either step, or both.
    expect(drift).toMatchObject({ deviceId, repaired: true, detail: expect.stringMatching(/^lab-back\.service is (active|enabled)(, lab-back\.service is enabled)? again$/) });
    expect(drift.count).toBeGreaterThanOrEqual(1);
    await undo(stopped);
    expect(await unitStates('lab-back.service')).toEqual({ 'lab-back.service': 'active enabled' });
  });

  it('stop service with removeUnitFile takes a unit out for good: nothing can start it, not even after systemd re-executes; written back, it is taken out again; undo restores the file byte for byte, enabled and running', async () => {
    const path = '/etc/systemd/system/lab-implant.service';
    const writeImplant = `printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n' > ${path}; chmod 640 ${path}; touch -d '2026-01-02 03:04:05' ${path}`;
    await box.sh(`${writeImplant}; systemctl daemon-reload; systemctl enable --now lab-implant.service`);
    const fileFacts = () => box.sh(`stat -c '%a %u %g %Y' ${path} && sha256sum ${path}`);
    const before = await fileFacts();
    const linksBefore = await unitLinks();

    const stopped = await act('stop_service', { name: 'lab-implant.service' }, { removeUnitFile: true });
    const { action } = await ctx.services.actions.get(ctx.users.security_reader.actor, stopped);
    expect(action.result?.output).toMatch(/its unit file \/etc\/systemd\/system\/lab-implant\.service \(SHA-256 [0-9a-f]{64}\) was removed/);
    expect(await box.sh(`ls ${path} 2>&1 || true`)).toMatch(/No such file/);
    expect((await box.run('systemctl', ['start', 'lab-implant.service'])).stderr).toMatch(/not found/);
    // What a reboot does to systemd's view of its units.
    await box.sh('systemctl daemon-reexec');
    expect((await box.run('systemctl', ['start', 'lab-implant.service'])).stderr).toMatch(/not found/);

    await box.sh(`${writeImplant}; systemctl daemon-reload; systemctl enable --now lab-implant.service`);
    const drift = await waitFor('the drift to be reported', async () => (await ctx.services.actions.get(ctx.users.security_reader.actor, stopped)).drift[0], 30_000);
    expect(drift).toMatchObject({ deviceId, repaired: true, detail: expect.stringContaining('lab-implant.service') });
    await waitFor('the unit file to be taken out again', async () => ((await box.sh(`ls ${path} 2>&1 || true`)).includes('No such file') ? true : undefined));
    expect((await unitStates('lab-implant.service'))['lab-implant.service']).toMatch(/^inactive /);

    expect(await undo(stopped)).toContain(`unit file ${path} back byte for byte`);
    expect(await fileFacts()).toBe(before);
    expect(await unitStates('lab-implant.service')).toEqual({ 'lab-implant.service': 'active enabled' });
    expect(await unitLinks()).toBe(linksBefore);
    await box.sh('systemctl disable --now lab-implant.service');

    // A unit file that is a symbolic link is not followed: refused before the unit is touched.
    await box.sh(`mkdir -p /srv/units; printf '[Service]\\nExecStart=/bin/sleep infinity\\n' > /srv/units/lab-linked.service
      ln -s /srv/units/lab-linked.service /etc/systemd/system/lab-linked.service; systemctl daemon-reload; systemctl start lab-linked.service`);
    const created = await ctx.request(ctx.users.security_operator, 'POST', '/api/actions', {
      type: 'stop_service', deviceId, source: 'manual', entity: { name: 'lab-linked.service' }, parameters: { removeUnitFile: true },
    });
    const refused = await waitForAction(ctx, created.json().id, undefined, 60_000);
    expect(refused.status).toBe('failed');
    expect(JSON.stringify(refused.result)).toMatch(/not a regular file reached without a symbolic link/);
    expect((await unitStates('lab-linked.service'))['lab-linked.service']).toMatch(/^active /);
    expect(await box.sh('readlink /etc/systemd/system/lab-linked.service')).toBe('/srv/units/lab-linked.service\n');
    await box.sh('systemctl stop lab-linked.service; rm /etc/systemd/system/lab-linked.service; systemctl daemon-reload');
  });

  it('contain user stops the services that run as the user, so none starts its processes again; release starts them again', async () => {
    await box.sh(`
      useradd -M -u 250001 -s /bin/sh labsvc
      printf '[Service]\\nUser=labsvc\\nExecStart=/bin/sleep infinity\\nRestart=always\\nRestartSec=100ms\\n' > /etc/systemd/system/lab-as-user.service
      systemctl daemon-reload
      systemctl start lab-as-user.service`);
    /** The container's processes owned by the user, from /proc. */
    const processesOfUser = async () => (await box.sh('for p in /proc/[0-9]*; do [ "$(stat -c %u "$p" 2>/dev/null)" = 250001 ] && echo "${p#/proc/}"; done; true')).trim();
    await waitFor('the service to run as the user', async () => ((await processesOfUser()) ? true : undefined));

    const contained = await act('contain_user', { name: 'labsvc' });
    const { action } = await ctx.services.actions.get(ctx.users.security_reader.actor, contained);
    expect(action.result?.output).toContain('stopped the services running as it: lab-as-user.service');
    expect((await unitStates('lab-as-user.service'))['lab-as-user.service']).toMatch(/^inactive /);
    // Restart=always had nothing to restart: the service was stopped, not its process killed under it.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await processesOfUser()).toBe('');

    expect(await undo(contained, ctx.users.global_admin)).toContain('started again the services that ran as it: lab-as-user.service');
    expect((await unitStates('lab-as-user.service'))['lab-as-user.service']).toMatch(/^active /);
    await waitFor('the service to run as the user again', async () => ((await processesOfUser()) ? true : undefined));
    await box.sh('systemctl stop lab-as-user.service');
  });

  it('remove scheduled task takes a timer out (its job stops running), and again when it is put back; restore brings it back running', async () => {
    const writeTimer = `printf '[Timer]\\nOnActiveSec=1s\\nOnUnitActiveSec=1s\\nAccuracySec=100ms\\n[Install]\\nWantedBy=timers.target\\n' > /etc/systemd/system/lab-tick.timer`;
    await box.sh(`
      printf '[Service]\\nType=oneshot\\nExecStart=/bin/sh -c "date +%%s%%N >> /var/tmp/lab-tick"\\n' > /etc/systemd/system/lab-tick.service
      ${writeTimer}
      systemctl daemon-reload
      systemctl enable --now lab-tick.timer`);
    const ticks = async () => Number((await box.sh('cat /var/tmp/lab-tick 2>/dev/null | wc -l')).trim());
    await waitFor('the timer to run its job', async () => ((await ticks()) >= 2 ? true : undefined));
    const linksBefore = await unitLinks();

    const removed = await act('remove_scheduled_task', { name: 'lab-tick.timer' });
    expect((await box.run('systemctl', ['list-timers', '--all', '--no-legend'])).stdout).not.toContain('lab-tick');
    const atRemoval = await ticks();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await ticks()).toBe(atRemoval);

    // Put back as it was, and started: the agent takes it out again and says so.
    await box.sh(`${writeTimer}; systemctl daemon-reload; systemctl enable --now lab-tick.timer`);
    const drift = await waitFor('the drift to be reported', async () => (await ctx.services.actions.get(ctx.users.security_reader.actor, removed)).drift[0], 30_000);
    expect(drift).toMatchObject({ deviceId, repaired: true, detail: expect.stringMatching(/^lab-tick\.timer (has its unit file back at \/etc\/systemd\/system\/lab-tick\.timer|is (enabled|active))/) });
    await waitFor('the timer to be gone again', async () => ((await box.run('systemctl', ['list-timers', '--all', '--no-legend'])).stdout.includes('lab-tick') ? undefined : true));
    expect(await box.sh('ls /etc/systemd/system/lab-tick.timer 2>&1 || true')).toMatch(/No such file/);
    const atSecondRemoval = await ticks();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await ticks()).toBe(atSecondRemoval);

    await undo(removed);
    expect(await unitStates('lab-tick.timer')).toEqual({ 'lab-tick.timer': 'active enabled' });
    expect(await unitLinks()).toBe(linksBefore);
    await waitFor('the restored timer to run its job again', async () => ((await ticks()) > atSecondRemoval + 1 ? true : undefined));
  });

  it('remove scheduled task takes cron.d jobs out of the real cron daemon; restore gives one back that cron runs', async () => {
    // Three jobs every minute, loaded by cron, then watched over one minute's tick: lab-keep stays and shows cron
    // ran that minute; lab-evil is removed before it; lab-back is removed and restored before it.
    // Both actions fit between two ticks when they start early in a minute.
    await waitFor('the first forty seconds of a minute', async () => (new Date().getSeconds() < 40 ? true : undefined), 30_000);
    await box.sh(`
      for job in keep evil back; do echo "* * * * * root date +\\%s >> /var/tmp/lab-$job" > /etc/cron.d/lab-$job; done
      chmod 644 /etc/cron.d/lab-*
      systemctl restart cron`);
    const before = await box.sh('cat /etc/cron.d/lab-back');
    const lines = async (file: string) => (await box.sh(`cat /var/tmp/${file} 2>/dev/null || true`)).trim().split('\n').filter(Boolean).map(Number);

    const started = Date.now();
    await act('remove_scheduled_task', { name: 'lab-evil', path: '/etc/cron.d/lab-evil' });
    await undo(await act('remove_scheduled_task', { name: 'lab-back', path: '/etc/cron.d/lab-back' }));
    expect(await box.sh('cat /etc/cron.d/lab-back')).toBe(before);
    const minute = (ms: number) => Math.floor(ms / 60_000);
    expect(minute(Date.now()), 'both actions ended within the minute they started in').toBe(minute(started));

    const ranSince = async (file: string) => ((await lines(file)).some((at) => at * 1000 >= started) ? true : undefined);
    await waitFor('cron to run the job that stayed', () => ranSince('lab-keep'), 75_000);
    await waitFor('cron to run the restored job on the same tick', () => ranSince('lab-back'));
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // the jobs of one tick start together: give a removed one time to show
    expect(await lines('lab-evil')).toEqual([]);
  }, 120_000);
});
