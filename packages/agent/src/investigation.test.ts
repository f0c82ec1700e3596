import { createHash, randomUUID } from 'node:crypto';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { type Endpoint, type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type AgentProcess, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex');

/**
 * The investigation scenario end to end: real agents on endpoints in network
 * namespaces, real files under /tmp, alerts through the HTTP API, the engine
 * as the server's job runs it, and decisions through the HTTP API.
 */
describe(`automated investigation with real agents in network namespaces (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  const endpoints: Record<'a' | 'b' | 'c', { endpoint: Endpoint; deviceId: string; agent: AgentProcess }> = {} as never;
  // Under /tmp: the folder where droppers land, which the verdict heuristics know.
  const root = mkdtempSync('/tmp/quell-investigation-');
  /** Device a's /etc: a copy mounted over /etc in its agent's mount namespace, where the test plants cron entries. */
  const etcOfA = join(root, 'etc-a');
  let engine: NodeJS.Timeout;

  beforeAll(async () => {
    lab = await createNetnsLab();
    execFileSync('cp', ['-a', '/etc', etcOfA]);
    const a = await lab.endpoint('a');
    ctx = await setupTestApp({ listen: { host: a.gateway }, clock: liveClock() });
    // The engine as the server runs it: a job that runs due steps.
    engine = setInterval(() => void ctx.services.investigations.runDue().catch(() => {}), 200);
    const full = (await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: 'web (full)', rank: 2, automationLevel: 'full' })).id;
    const semi = (await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: 'finance (semi)', rank: 1, automationLevel: 'semi_any_folder' })).id;
    for (const [name, group, endpoint] of [['a', full, a], ['b', semi, await lab.endpoint('b')], ['c', semi, await lab.endpoint('c')]] as const) {
      const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
      const dir = join(root, `agent-${name}`);
      const deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', dir], endpoint.ns))![1]!;
      expect((await ctx.request(ctx.users.security_admin, 'PATCH', `/api/devices/${deviceId}`, { groupId: group })).statusCode).toBe(200);
      endpoints[name] = { endpoint, deviceId, agent: spawnAgent(dir, endpoint.ns, { bundle: true, ...(name === 'a' ? { sandbox: { etc: etcOfA } } : {}) }) };
    }
  });

  afterAll(async () => {
    clearInterval(engine);
    for (const { agent } of Object.values(endpoints)) await agent?.stop();
    await ctx?.close();
    await lab?.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** The same bytes on each named device, each in its own folder under /tmp. */
  function plant(content: string, devices: Array<'a' | 'b' | 'c'>): Record<string, string> {
    const paths: Record<string, string> = {};
    for (const device of devices) {
      const dir = join(root, `files-${device}-${randomUUID().slice(0, 8)}`);
      mkdirSync(dir);
      paths[device] = join(dir, 'kworker');
      writeFileSync(paths[device], content, { mode: 0o755 });
    }
    return paths;
  }
  async function alert(device: 'a' | 'b' | 'c', path: string, hash: string, severity: string): Promise<void> {
    const response = await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
      title: 'Process launched from a temp folder', severity, category: 'execution', detectionSource: 'edr-rules', deviceId: endpoints[device].deviceId,
      occurredAt: new Date().toISOString(), evidence: [{ kind: 'file', path, sha256: hash }],
    });
    expect(response.statusCode, response.body).toBe(201);
  }
  const investigationOf = async (device: 'a' | 'b' | 'c', after: number) => waitFor(`an investigation on ${device}`, async () => {
    const items = (await ctx.request(ctx.users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string; startedAt: string }>;
    return items.find((i) => i.deviceId === endpoints[device].deviceId && Date.parse(i.startedAt) >= after)?.id;
  });
  const detail = async (id: string) => (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json();
  const statusOf = (id: string, wanted: string) => waitFor(`investigation ${id} to be ${wanted}`, async () => ((await detail(id)).investigation.status === wanted ? true : undefined));

  /** A real executable of its own hash, running from a hidden folder in /var/tmp: sleep with bytes of its own after its end. */
  function runDropper(folder: string, tag: string) {
    const dir = mkdtempSync('/var/tmp/quell-investigation-');
    mkdirSync(join(dir, folder));
    const exe = join(dir, folder, 'run');
    writeFileSync(exe, Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\n${folder} ${tag}\n`)]), { mode: 0o755 });
    const running = spawn(exe, ['300'], { stdio: 'ignore' });
    return { dir, exe, running, exited: new Promise((resolve) => running.once('exit', resolve)) };
  }

  it('remediates on A by itself, asks for B and C, and ends partially remediated when B is approved and C rejected', async () => {
    const content = `dropper ${randomUUID()}`;
    const hash = sha256(content);
    const files = plant(content, ['a', 'b', 'c']);
    const started = Date.now();
    // B and C reported the file before, in alerts that said little.
    await alert('b', files.b!, hash, 'informational');
    await alert('c', files.c!, hash, 'informational');
    await alert('a', files.a!, hash, 'high');
    const id = await investigationOf('a', started);
    await statusOf(id, 'pending_action');

    const seen = await detail(id);
    const quarantines = seen.actions.filter((x: { type: string }) => x.type === 'quarantine_file');
    const byDevice = new Map(quarantines.map((x: { deviceId: string }) => [x.deviceId, x])) as Map<string, { id: string; status: string; source: string }>;
    // The agent on A was asked for evidence first, and answered: the file named in the alert was there.
    expect(seen.actions.find((x: { type: string }) => x.type === 'collect_evidence')).toMatchObject({ deviceId: endpoints.a.deviceId, status: 'completed' });
    expect(seen.log.filter((l: { step: string }) => l.step === 'evidence').map((l: { result: string }) => l.result))
      .toEqual(['asked the agent for evidence', expect.stringMatching(/^evidence from the agent: \d+ processes and \d+ persistence entries looked at/)]);
    const onA = await waitForAction(ctx, byDevice.get(endpoints.a.deviceId)!.id);
    expect(onA).toMatchObject({ status: 'completed', source: 'automated_investigation', investigationId: id });
    expect(existsSync(files.a!)).toBe(false);
    const history = (await ctx.request(ctx.users.security_reader, 'GET', `/api/actions?view=history&source=automated_investigation&deviceId=${endpoints.a.deviceId}`)).json().items;
    expect(history.map((x: { id: string }) => x.id)).toContain(onA.id);
    expect(byDevice.get(endpoints.b.deviceId)!.status).toBe('pending_approval');
    expect(byDevice.get(endpoints.c.deviceId)!.status).toBe('pending_approval');

    expect((await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/approve', { ids: [byDevice.get(endpoints.b.deviceId)!.id], comment: 'same dropper' })).statusCode).toBe(200);
    expect((await ctx.request(ctx.users.security_operator, 'POST', '/api/actions/reject', { ids: [byDevice.get(endpoints.c.deviceId)!.id], comment: 'build artefact' })).statusCode).toBe(200);
    expect((await waitForAction(ctx, byDevice.get(endpoints.b.deviceId)!.id)).status).toBe('completed');
    await statusOf(id, 'partially_remediated');
    expect(existsSync(files.b!)).toBe(false);
    expect(readFileSync(files.c!, 'utf8')).toBe(content);
  });

  it('ends terminated by the system when the only pending action expires', async () => {
    const content = `second dropper ${randomUUID()}`;
    const files = plant(content, ['b']);
    const started = Date.now();
    await alert('b', files.b!, sha256(content), 'high');
    const id = await investigationOf('b', started);
    await statusOf(id, 'pending_action');
    ctx.clock.advance(8 * 24 * 3_600_000);
    await ctx.services.actions.expireDue(systemActor());
    await statusOf(id, 'terminated_by_system');
    ctx.clock.set(Date.now());
    expect(existsSync(files.b!)).toBe(true);
  });

  it('an allow indicator keeps a file from being remediated even where automation is full', async () => {
    const content = `in-house tool ${randomUUID()}`;
    const files = plant(content, ['a']);
    await ctx.request(ctx.users.security_admin, 'POST', '/api/indicators', { type: 'sha256', value: sha256(content), action: 'allow', title: 'in-house tool' });
    const started = Date.now();
    await alert('a', files.a!, sha256(content), 'high');
    const id = await investigationOf('a', started);
    await statusOf(id, 'no_threats_found');
    expect((await detail(id)).actions.map((x: { type: string }) => x.type)).toEqual(['collect_evidence']);
    expect(existsSync(files.a!)).toBe(true);
  });

  it('finds a process running from /tmp that a cron line launches, and stops and quarantines it', async () => {
    const dir = join(root, `persist-${randomUUID().slice(0, 8)}`);
    mkdirSync(dir);
    const exe = join(dir, 'kthreadd');
    copyFileSync('/bin/sleep', exe);
    chmodSync(exe, 0o755);
    const running = spawn(exe, ['300'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => running.once('exit', resolve));
    mkdirSync(join(etcOfA, 'cron.d'), { recursive: true });
    const cronFile = join(etcOfA, 'cron.d', `quell-e2e-${randomUUID().slice(0, 8)}`);
    writeFileSync(cronFile, `@reboot root ${exe} 300\n`);
    try {
      const named = plant(`harmless ${randomUUID()}`, ['a']);
      const started = Date.now();
      // The alert itself says little; the agent's evidence shows what matters.
      await alert('a', named.a!, sha256(readFileSync(named.a!, 'utf8')), 'low');
      const id = await investigationOf('a', started);
      await statusOf(id, 'remediated');
      const seen = await detail(id);
      expect(seen.entities.find((e: { kind: string; path: string }) => e.kind === 'process' && e.path === exe))
        .toMatchObject({ verdict: 'malicious', reason: expect.stringMatching(/^pid \d+: an executable in a temp or download folder that a persistence entry launches: cron \/etc\/cron\.d\/quell-e2e-[0-9a-f]{8}$/) });
      expect(seen.actions.find((x: { type: string }) => x.type === 'stop_and_quarantine_file')).toMatchObject({ status: 'completed', entity: { path: exe } });
      await exited;
      expect(existsSync(exe)).toBe(false);
      expect(existsSync(named.a!)).toBe(true);
    } finally {
      running.kill();
      rmSync(cronFile, { force: true });
    }
  });

  it('judges an alert-named executable in /var/tmp by the crontab line, cron.d file and unit that launch it, and removes each with its quarantine, not a developer tool beside it', async () => {
    const tag = randomUUID().slice(0, 8);
    const { dir, exe, running, exited } = runDropper('.x', tag);
    // A developer's tool running from /tmp that nothing launches and no alert names.
    const tool = join(root, `devtool-${tag}`, 'watch');
    mkdirSync(join(root, `devtool-${tag}`));
    writeFileSync(tool, Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\ntool ${tag}\n`)]), { mode: 0o755 });
    const developer = spawn(tool, ['300'], { stdio: 'ignore' });
    const crontab = join(etcOfA, 'crontab');
    const crontabBefore = existsSync(crontab) ? readFileSync(crontab, 'utf8') : null;
    const unrelated = '0 4 * * * root /usr/local/bin/backup-notes';
    const line = `*/5 * * * * root ${exe} 300 >/dev/null 2>&1`;
    writeFileSync(crontab, `${crontabBefore ?? 'SHELL=/bin/sh\n'}${unrelated}\n${line}\n`);
    mkdirSync(join(etcOfA, 'cron.d'), { recursive: true });
    const cronFile = join(etcOfA, 'cron.d', `dbus-helper-${tag}`);
    writeFileSync(cronFile, `@reboot root ${exe} 300\n`);
    mkdirSync(join(etcOfA, 'systemd', 'system'), { recursive: true });
    const unit = `dbus-helper-${tag}.service`;
    writeFileSync(join(etcOfA, 'systemd', 'system', unit), `[Unit]\nDescription=D-Bus helper\n\n[Service]\nExecStart=${exe} 300\n\n[Install]\nWantedBy=multi-user.target\n`);
    try {
      const started = Date.now();
      await alert('a', exe, createHash('sha256').update(readFileSync(exe)).digest('hex'), 'low');
      const id = await investigationOf('a', started);
      const seen = await waitFor(`investigation ${id} to end`, async () => {
        const d = await detail(id);
        return ['remediated', 'partially_remediated', 'failed'].includes(d.investigation.status) ? d : undefined;
      }, 30_000);
      const file = seen.entities.find((e: { path: string }) => e.path === exe);
      expect(file).toMatchObject({ kind: 'process', verdict: 'malicious' });
      expect(file.reason).toBe(`pid ${running.pid}: an executable in a temp or download folder that a persistence entry launches: cron /etc/crontab, cron /etc/cron.d/dbus-helper-${tag}, systemd /etc/systemd/system/${unit}`);
      const proposed = seen.actions.filter((x: { type: string; investigationId: string }) => x.type !== 'collect_evidence' && x.investigationId === id)
        .map((x: { type: string; entity: { name: string; path?: string }; parameters: unknown }) => [x.type, x.entity.path ?? x.entity.name, x.parameters]);
      expect(proposed).toHaveLength(4);
      expect(proposed).toEqual(expect.arrayContaining([
        ['stop_and_quarantine_file', exe, {}],
        ['remove_scheduled_task', '/etc/crontab', { line }],
        ['remove_scheduled_task', `/etc/cron.d/dbus-helper-${tag}`, {}],
        ['stop_service', unit, { removeUnitFile: true }],
      ]));
      // Carried out by the agent on its own /etc: the line and the file are gone, the rest of the crontab is as it was.
      const outcome = seen.actions.filter((x: { type: string; investigationId: string }) => x.type !== 'collect_evidence' && x.investigationId === id)
        .map((x: { type: string; status: string }) => [x.type, x.status]);
      // This machine's PID 1 is not systemd: stopping the unit fails there and leaves its file (service.linux.test.ts covers the executor with recorded systemctl commands).
      expect(outcome.sort()).toEqual([['remove_scheduled_task', 'completed'], ['remove_scheduled_task', 'completed'], ['stop_and_quarantine_file', 'completed'], ['stop_service', 'failed']]);
      expect(seen.investigation.status).toBe('partially_remediated');
      expect(existsSync(join(etcOfA, 'systemd', 'system', unit))).toBe(true);
      await exited;
      expect(existsSync(exe)).toBe(false);
      expect(readFileSync(crontab, 'utf8')).toBe(`${crontabBefore ?? 'SHELL=/bin/sh\n'}${unrelated}\n`);
      expect(existsSync(cronFile)).toBe(false);
      expect(developer.exitCode).toBeNull();
      expect(existsSync(tool)).toBe(true);
    } finally {
      running.kill();
      developer.kill();
      rmSync(dir, { recursive: true, force: true });
      rmSync(cronFile, { force: true });
      rmSync(join(etcOfA, 'systemd', 'system', unit), { force: true });
      if (crontabBefore === null) rmSync(crontab, { force: true });
      else writeFileSync(crontab, crontabBefore);
    }
  });

  it('removes the shell startup line and the profile.d file that start an alert-named executable, with its quarantine, and nothing else', async () => {
    const { dir, exe, running, exited } = runDropper('.y', randomUUID().slice(0, 8));
    const tag = randomUUID().slice(0, 8);
    const bashrc = join(etcOfA, 'bash.bashrc');
    const bashrcBefore = existsSync(bashrc) ? readFileSync(bashrc, 'utf8') : null;
    const line = `(${exe} 300 &) 2>/dev/null`;
    writeFileSync(bashrc, `${bashrcBefore ?? '[ -z "$PS1" ] && return\n'}${line}\n`);
    mkdirSync(join(etcOfA, 'profile.d'), { recursive: true });
    const dropIn = join(etcOfA, 'profile.d', `zz-helper-${tag}.sh`);
    writeFileSync(dropIn, `#!/bin/sh\nnohup ${exe} 300 >/dev/null 2>&1 &\n`);
    try {
      const started = Date.now();
      await alert('a', exe, createHash('sha256').update(readFileSync(exe)).digest('hex'), 'low');
      const id = await investigationOf('a', started);
      await statusOf(id, 'remediated');
      const seen = await detail(id);
      expect(seen.entities.find((e: { path: string }) => e.path === exe)).toMatchObject({
        kind: 'process', verdict: 'malicious',
        reason: `pid ${running.pid}: an executable in a temp or download folder that a persistence entry launches: startup /etc/bash.bashrc, startup /etc/profile.d/zz-helper-${tag}.sh`,
      });
      const proposed = seen.actions.filter((x: { type: string; investigationId: string }) => x.type !== 'collect_evidence' && x.investigationId === id)
        .map((x: { type: string; status: string; entity: { path?: string }; parameters: unknown }) => [x.type, x.status, x.entity.path, x.parameters]);
      expect(proposed).toHaveLength(3);
      expect(proposed).toEqual(expect.arrayContaining([
        ['stop_and_quarantine_file', 'completed', exe, {}],
        ['remove_persistence', 'completed', '/etc/bash.bashrc', { line }],
        ['remove_persistence', 'completed', `/etc/profile.d/zz-helper-${tag}.sh`, {}],
      ]));
      await exited;
      expect(existsSync(exe)).toBe(false);
      expect(readFileSync(bashrc, 'utf8')).toBe(bashrcBefore ?? '[ -z "$PS1" ] && return\n');
      expect(existsSync(dropIn)).toBe(false);
    } finally {
      running.kill();
      rmSync(dir, { recursive: true, force: true });
      rmSync(dropIn, { force: true });
      if (bashrcBefore === null) rmSync(bashrc, { force: true });
      else writeFileSync(bashrc, bashrcBefore);
    }
  });

  it('resumes after a server restart in the middle of an investigation and finishes once', async () => {
    const content = `third dropper ${randomUUID()}`;
    const files = plant(content, ['a']);
    clearInterval(engine);
    const started = Date.now();
    await alert('a', files.a!, sha256(content), 'high');
    const id = await investigationOf('a', started);
    await ctx.restart();
    engine = setInterval(() => void ctx.services.investigations.runDue().catch(() => {}), 200);
    await statusOf(id, 'remediated');
    const seen = await detail(id);
    expect(seen.actions.map((x: { type: string }) => x.type).sort()).toEqual(['collect_evidence', 'quarantine_file']);
    expect(seen.log.filter((l: { step: string }) => l.step === 'remediate')).toHaveLength(1);
    expect(existsSync(files.a!)).toBe(false);
  });
});
