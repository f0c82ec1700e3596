import { createHash, randomUUID } from 'node:crypto';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type Action, type ActionType, INVESTIGATION_ENDED, entityKey } from '@quell/contracts';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestContext, type TestUser, TEST_DIALECT, liveClock, setupTestApp } from '@quell/server/testing';
import { type NetnsLab, createNetnsLab } from './test/netns-lab.ts';
import { type SystemdContainer, bootSystemd } from './test/systemd-lab.ts';
import { type AgentProcess, agentProcessIn, quell, sandboxFolders, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
const REPORT = new URL('../../../bench/detection-quality.md', import.meta.url).pathname;
/** Planted files carry an old modification time: a restore that writes "now" instead would show. */
const PLANTED_AT = new Date('2026-10-01T09:30:00Z');

/** A proposal as an analyst reads it: the action, what it acts on (a file's path or a unit's name), and its parameters. */
type Proposal = readonly [type: ActionType, target: string, parameters: Record<string, unknown>];

/** A file the attacker writes to make the executable run again, and what must be left of it once the launcher is removed. */
interface Launcher {
  path: string;
  content: string;
  mode: number;
  gid?: number;
  /** The file after removal: the benign lines that must stay, or null when the whole file goes. */
  after: string | null;
}

interface Scenario {
  name: string;
  /** The MITRE ATT&CK technique planted. */
  technique: string;
  /** The file the alert names, as the agent sees it: an executable that runs, or a library the loader preloads. */
  file: string;
  library?: boolean;
  launchers: Launcher[];
  /** What a careful analyst proposes: the file's quarantine and each launcher's removal, and nothing else. */
  expected: Proposal[];
  /** A file-integrity monitor reports the file too, once the proposals are made: the investigation runs again and must propose nothing twice. */
  reportedAgain?: true;
}

/** One row of the detection-quality table. */
interface Measured { scenario: string; technique: string; expected: string[]; proposed: string[]; duplicates: number }

const DROPPER = (n: number): string => `/var/tmp/.x${n}/run`;
const RUN = (n: number): string => `${DROPPER(n)} 300`;
const BENIGN_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFq2l0Vb3yN7mXq1Yc0aQ8x5P2hWzL9gKt4sR6uJdE1o admin@laptop';
const ATTACKER_KEY = `command="${DROPPER(5)}",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7vQe3mK0pXw9cR2sT5yU8zA1bC4dE6fG7hI9jK0lMn attacker`;
const BASHRC = '# ~/.bashrc: executed by bash(1) for non-login shells.\n[ -z "$PS1" ] && return\nHISTCONTROL=ignoreboth\nalias ll=\'ls -alF\'\n';
const LIBRARY = '/var/tmp/.x6/libx.so';

/**
 * The acceptance test of automated investigations: real attacker persistence
 * techniques on Linux, each planted in a sandbox where a real agent runs, an
 * alert naming the attacker's file posted through the HTTP API, and the
 * server's engine left to investigate. Each must end in exactly the
 * proposals an analyst would make — the file's quarantine and the removal
 * of every launcher, nothing more, nothing twice — and those, approved,
 * must have their effect seen from outside the agent, and, undone, give back
 * every file byte for byte with its mode, owner and time.
 *
 * The agent runs in a network namespace and a private mount namespace where
 * /etc, /var/spool, /home, /root and /var/tmp are test folders: this
 * machine's own are never touched. The attacker's processes run in that
 * namespace too, so the agent sees them at the sandbox's paths. What systemd
 * runs is planted on a second device, a container booting a real systemd
 * (systemd-lab.ts). The proposals of every scenario are tallied into
 * bench/detection-quality.md.
 */
describe(`attack scenarios, investigated by the engine with a real agent (${TEST_DIALECT})`, () => {
  let lab: NetnsLab;
  let ctx: TestContext;
  let agent: AgentProcess;
  let deviceId: string;
  /** The agent's process, whose mount namespace the attacker's processes join and whose root the test plants through. */
  let pid: number;
  let engine: NodeJS.Timeout;
  let developer: { process: ChildProcess; path: string };
  /** A second device: a container that boots a real systemd, for the technique that needs one (systemd-lab.ts). */
  let booting: Promise<SystemdContainer> | undefined;
  let box: SystemdContainer;
  let boxAgent: AgentProcess;
  let systemdDeviceId: string;
  const root = mkdtempSync('/tmp/quell-attack-');
  /** Bound into the container at the same path: files for it are written here first. */
  const work = join(root, 'systemd');
  const measured: Measured[] = [];
  /** Set once every scenario has run: a run of some of them writes no table. */
  let tallied = false;

  /** A path as the sandboxed agent sees it, reached from outside. */
  const inside = (path: string): string => `/proc/${pid}/root${path}`;
  /** Starts a program in the agent's mount namespace, as the technique would have it run there. */
  const runInside = (path: string, args: string[]): ChildProcess => spawn('nsenter', ['-t', String(pid), '-m', path, ...args], { stdio: 'ignore' });

  beforeAll(async () => {
    mkdirSync(work);
    booting = bootSystemd([work]);
    lab = await createNetnsLab();
    const endpoint = await lab.endpoint('a');
    const sandbox = sandboxFolders(join(root, 'sandbox'));
    ctx = await setupTestApp({ listen: { host: endpoint.gateway }, clock: liveClock() });
    engine = setInterval(() => void ctx.services.investigations.runDue().catch(() => {}), 200);
    // An analyst approves every remediation: the test approves, and sees each one carried out.
    const group = (await ctx.services.devices.createGroup(ctx.users.security_admin.actor, { name: 'servers (semi)', rank: 1, automationLevel: 'semi_any_folder' })).id;
    const enrol = async (name: string, dir: string, netns?: string): Promise<string> => {
      const { secret } = await ctx.services.agents.createEnrolmentToken(systemActor(), { name, uses: 1, expiresInDays: 1 });
      const id = /Enrolled as device ([0-9a-f-]{36})/.exec(await quell(['agent', 'enrol', '--server', ctx.url, '--token', secret, '--dir', dir], netns))![1]!;
      expect((await ctx.request(ctx.users.security_admin, 'PATCH', `/api/devices/${id}`, { groupId: group })).statusCode).toBe(200);
      return id;
    };
    deviceId = await enrol('attacked', join(root, 'agent'), endpoint.ns);
    agent = spawnAgent(join(root, 'agent'), endpoint.ns, { bundle: true, sandbox });
    pid = await waitFor('the sandboxed agent to start', async () => agentProcessIn(agent.child.pid!));
    // The container shares this machine's network: its agent reaches the server at the lab's gateway address.
    systemdDeviceId = await enrol('attacked-systemd', join(work, 'agent'));
    box = await booting;
    boxAgent = box.spawnAgent(join(work, 'agent'));
    for (const running of [agent, boxAgent]) await waitFor('the agents to connect', async () => (running.log().includes('"msg":"connected"') ? true : undefined), 30_000);

    // A developer's build of a server running from /tmp, which nothing launches and no alert names: never remediated.
    const path = `/tmp/go-build${randomUUID().slice(0, 8)}/b001/exe/devserver`;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\ndevserver ${randomUUID()}\n`)]), { mode: 0o755 });
    developer = { process: runInside(path, ['300']), path };
  });

  afterAll(async () => {
    clearInterval(engine);
    developer?.process.kill();
    if (developer) rmSync(dirname(dirname(dirname(developer.path))), { recursive: true, force: true });
    if (tallied) writeReport(measured);
    await agent?.stop();
    await boxAgent?.stop();
    // Closed even when the test failed before it waited for the boot.
    await (box ?? (await booting?.catch(() => undefined)))?.close();
    await ctx?.close();
    await lab?.close();
    rmSync(root, { recursive: true, force: true });
  });

  const detail = async (id: string) => (await ctx.request(ctx.users.security_reader, 'GET', `/api/investigations/${id}`)).json();
  async function postAlert(path: string, hash: string, severity: 'low' | 'medium', device: string, detectionSource: string): Promise<void> {
    const response = await ctx.request(ctx.users.security_operator, 'POST', '/api/alerts', {
      title: 'Suspicious executable in a temp folder', severity, category: 'persistence', detectionSource, deviceId: device,
      occurredAt: new Date().toISOString(), evidence: [{ kind: 'file', path, sha256: hash }],
    });
    expect(response.statusCode, response.body).toBe(201);
  }
  /** Alerts as an EDR would, and returns the investigation the alert opened. */
  async function alert(path: string, hash: string, severity: 'low' | 'medium', device = deviceId): Promise<string> {
    const started = Date.now();
    await postAlert(path, hash, severity, device, 'edr-rules');
    return waitFor('the investigation of the alert', async () => {
      const items = (await ctx.request(ctx.users.security_reader, 'GET', '/api/investigations')).json().items as Array<{ id: string; deviceId: string; startedAt: string }>;
      return items.find((i) => i.deviceId === device && Date.parse(i.startedAt) >= started)?.id;
    });
  }
  const statusOf = (id: string, wanted: readonly string[]) => waitFor(`investigation ${id} to be ${wanted.join(' or ')}`, async () => {
    const seen = await detail(id);
    return wanted.includes(seen.investigation.status) ? seen : undefined;
  }, 30_000);

  /** A file exactly as it is: what restore must give back. */
  const state = (path: string) => {
    const stat = lstatSync(inside(path));
    return { path, sha256: sha256(readFileSync(inside(path))), mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtimeMs: stat.mtimeMs };
  };
  function plantFile(path: string, content: Buffer | string, mode: number, gid = 0): void {
    mkdirSync(dirname(inside(path)), { recursive: true });
    writeFileSync(inside(path), content);
    chmodSync(inside(path), mode);
    chownSync(inside(path), 0, gid);
    utimesSync(inside(path), PLANTED_AT, PLANTED_AT);
  }
  /** A library of the system's own that does nothing when preloaded (glibc's libdl, an empty shell since glibc 2.34). */
  function preloadableSystemLibrary(): string {
    const path = /\slibdl\.so\.2 \([^)]*\) => (\S+)/.exec(execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }))?.[1];
    if (path === undefined) throw new Error('ldconfig -p lists no libdl.so.2');
    return path;
  }
  /**
   * The attacker's library: a real shared object, since a preloaded file
   * that is not one makes every program print loader errors, with bytes of
   * its own after its end (which the loader ignores) for a hash of its own.
   */
  const attackerLibrary = (): Buffer => Buffer.concat([readFileSync(preloadableSystemLibrary()), Buffer.from(`\nlibx ${randomUUID()}\n`)]);

  const asProposal = (a: Action): Proposal => [a.type, a.entity.path ?? a.entity.name, a.parameters];
  const sorted = (list: readonly Proposal[]): string[] => list.map((p) => JSON.stringify(p)).sort();
  const duplicatesAmong = (actions: readonly Action[]): number => {
    const keys = actions.map((a) => `${a.type}|${a.deviceId}|${entityKey(a.type, a.entity, a.parameters) ?? JSON.stringify(a.entity)}`);
    return keys.length - new Set(keys).size;
  };
  async function decide(path: '/api/actions/approve' | '/api/actions/undo' | '/api/actions/reject', actions: readonly Action[], user: TestUser): Promise<string[]> {
    const ids: string[] = [];
    // One call per type: a bulk decision takes actions of one type.
    for (const type of new Set(actions.map((a) => a.type))) {
      const response = await ctx.request(user, 'POST', path, { ids: actions.filter((a) => a.type === type).map((a) => a.id), comment: 'attack scenario' });
      expect(response.statusCode, response.body).toBe(200);
      ids.push(...(response.json().items as Array<{ id: string }>).map((item) => item.id));
    }
    return ids;
  }
  async function completed(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const done = await waitForAction(ctx, id, undefined, 30_000);
      expect(done.status, `${done.type} ${JSON.stringify(done.entity)}: ${JSON.stringify(done.result)}`).toBe('completed');
    }
  }
  const isQuarantine = (a: Action): boolean => a.type === 'quarantine_file' || a.type === 'stop_and_quarantine_file';
  /**
   * The order an analyst carries the proposals out in, one type after the
   * other: the launchers first, then the file — a service that restarts its
   * process would otherwise start it again between the kill and the
   * quarantine.
   */
  const inOrder = (proposed: readonly Action[]): Action[][] => {
    const types = [...new Set(proposed.filter((a) => !isQuarantine(a)).map((a) => a.type)), ...new Set(proposed.filter(isQuarantine).map((a) => a.type))];
    return types.map((type) => proposed.filter((a) => a.type === type));
  };
  async function approveAll(proposed: readonly Action[]): Promise<void> {
    for (const group of inOrder(proposed)) await completed(await decide('/api/actions/approve', group, ctx.users.security_operator));
  }
  /**
   * Undoes every proposal in the reverse order: the file first (a launcher
   * put back may start it at once), and a service after the timer that
   * starts it, which its restore enables again.
   */
  async function undoAll(proposed: readonly Action[]): Promise<void> {
    for (const group of inOrder(proposed).reverse()) await completed(await decide('/api/actions/undo', group, ctx.users.security_admin));
  }
  /** Rejects what a failed scenario left waiting, so that the next alert opens an investigation of its own. */
  async function settle(id: string | undefined): Promise<void> {
    if (id === undefined) return;
    const waiting = ((await detail(id)).actions as Action[]).filter((a) => a.status === 'pending_approval');
    for (const type of new Set(waiting.map((a) => a.type))) await decide('/api/actions/reject', waiting.filter((a) => a.type === type), ctx.users.security_operator);
    await statusOf(id, INVESTIGATION_ENDED);
  }

  /** Alerts on the scenario's file and returns what the investigation proposed, measured against what is expected. */
  async function investigated(scenario: Scenario, hash: string, device: string): Promise<{ id: string; proposed: Action[] }> {
    const id = await alert(scenario.file, hash, 'low', device);
    let seen = await statusOf(id, ['pending_action', 'no_threats_found', 'remediated', 'partially_remediated', 'failed']);
    if (scenario.reportedAgain) {
      const remediations = (d: { log: Array<{ step: string }> }) => d.log.filter((l) => l.step === 'remediate').length;
      const before = remediations(seen);
      await postAlert(scenario.file, hash, 'low', device, 'file-integrity');
      // The second alert joins the investigation, which runs its steps again.
      seen = await waitFor('the investigation to run again with the second alert', async () => {
        const d = await detail(id);
        return d.alertIds.length === 2 && remediations(d) > before && d.investigation.status === 'pending_action' ? d : undefined;
      }, 30_000);
    }
    const proposed = (seen.actions as Action[]).filter((a) => a.type !== 'collect_evidence' && a.investigationId === id);
    const row = { scenario: scenario.name, technique: scenario.technique, expected: sorted(scenario.expected), proposed: sorted(proposed.map(asProposal)), duplicates: duplicatesAmong(proposed) };
    measured.push(row);
    // Soft: when the engine proposes something else, what it did propose is still carried out and checked.
    expect.soft(row.proposed, `the proposals for ${scenario.name}`).toEqual(row.expected);
    expect.soft(row.duplicates, `duplicate proposals for ${scenario.name}`).toBe(0);
    expect.soft(seen.entities.find((e: { path: string }) => e.path === scenario.file), `the verdict on ${scenario.file}`).toMatchObject({ verdict: 'malicious' });
    expect(seen.investigation.status).toBe('pending_action');
    return { id, proposed };
  }

  /**
   * Plants the scenario, alerts on its file, and checks the proposals, their
   * effect once approved, and the exact restore once undone.
   */
  async function attack(scenario: Scenario): Promise<void> {
    const planted: string[] = [];
    let running: { process: ChildProcess; exited: Promise<unknown> } | null = null;
    let investigation: string | undefined;
    try {
      const bytes = scenario.library ? attackerLibrary() : Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\n${scenario.name} ${randomUUID()}\n`)]);
      plantFile(scenario.file, bytes, scenario.library ? 0o644 : 0o755);
      planted.push(scenario.file);
      if (!scenario.library) {
        const child = runInside(scenario.file, ['300']);
        running = { process: child, exited: new Promise((resolve) => child.once('exit', resolve)) };
      }
      for (const launcher of scenario.launchers) {
        plantFile(launcher.path, launcher.content, launcher.mode, launcher.gid);
        planted.push(launcher.path);
      }
      const before = planted.map(state);

      const { id, proposed } = await investigated(scenario, sha256(bytes), deviceId);
      investigation = id;
      await approveAll(proposed);
      await statusOf(id, ['remediated']);

      // Seen from outside the agent: the file and its process are gone, each launcher is gone and every other line stays.
      expect(existsSync(inside(scenario.file))).toBe(false);
      if (running) await running.exited;
      for (const launcher of scenario.launchers) {
        if (launcher.after === null) expect(existsSync(inside(launcher.path)), launcher.path).toBe(false);
        else expect(readFileSync(inside(launcher.path), 'utf8'), launcher.path).toBe(launcher.after);
      }

      // Undone, every file is back exactly as it was: bytes, mode, owner and modification time.
      await undoAll(proposed);
      expect(planted.map(state)).toEqual(before);
    } finally {
      await settle(investigation);
      running?.process.kill();
      // ld.so.preload first: while it names a library that is gone, every program started in the sandbox complains.
      for (const path of planted.reverse()) rmSync(inside(path), { force: true });
    }
  }

  const crontabGid = (): number => Number(/^crontab:[^:]*:(\d+):/m.exec(readFileSync(inside('/etc/group'), 'utf8'))?.[1] ?? 0);

  it('T1053.003 a line of root\'s crontab: the line goes, the other jobs stay (one of them runs a script in /var/tmp), and not the developer tool running from /tmp', async () => {
    const line = `*/5 * * * * ${RUN(1)} >/dev/null 2>&1`;
    // The administrator's own jobs, one of them a script in /var/tmp: it launches nothing malicious and stays.
    const others = '# m h  dom mon dow   command\nMAILTO=""\n0 3 * * * /usr/local/bin/backup.sh\n30 2 * * * /var/tmp/cleanup-cache.sh\n';
    await attack({
      name: 'user crontab line', technique: 'T1053.003', file: DROPPER(1),
      launchers: [{ path: '/var/spool/cron/crontabs/root', content: `${others}${line}\n`, mode: 0o600, gid: crontabGid(), after: others }],
      expected: [['stop_and_quarantine_file', DROPPER(1), {}], ['remove_scheduled_task', '/var/spool/cron/crontabs/root', { line }]],
    });
    expect(developer.process.exitCode).toBeNull();
    expect(existsSync(developer.path)).toBe(true);
  });

  it('T1053.003 @reboot in /etc/cron.d, reported twice: a file of only the attacker\'s job goes whole, a shared one loses the line, each proposed once', async () => {
    const line = `@reboot root ${RUN(2)}`;
    const benign = 'SHELL=/bin/sh\n5-55/10 * * * * root command -v debian-sa1 > /dev/null && debian-sa1 1 1\n';
    await attack({
      name: '/etc/cron.d @reboot, reported twice', technique: 'T1053.003', file: DROPPER(2), reportedAgain: true,
      launchers: [
        { path: '/etc/cron.d/dbus-helper', content: `SHELL=/bin/sh\n${line}\n`, mode: 0o644, after: null },
        { path: '/etc/cron.d/sysstat-extra', content: `${benign}${line}\n`, mode: 0o644, after: benign },
      ],
      expected: [
        ['stop_and_quarantine_file', DROPPER(2), {}],
        ['remove_scheduled_task', '/etc/cron.d/dbus-helper', {}],
        ['remove_scheduled_task', '/etc/cron.d/sysstat-extra', { line }],
      ],
    });
  });

  /**
   * A technique that systemd runs, on the container's real systemd: the
   * units are written to /etc/systemd/system and started by `start`, so the
   * attacker's process is systemd's. Approved, no process runs the file and
   * the file, units and links are gone; undone, each file is back byte for
   * byte and each unit in the state it was.
   */
  async function attackOnSystemd(scenario: Omit<Scenario, 'launchers'> & { units: Record<string, string>; start: string }): Promise<void> {
    const bytes = Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\n${scenario.name} ${randomUUID()}\n`)]);
    const units = Object.keys(scenario.units);
    const files = [scenario.file, ...units.map((unit) => `/etc/systemd/system/${unit}`)];
    const stamp = PLANTED_AT.getTime() / 1000;
    const install = (from: string, to: string, mode: string) => `install -D -m ${mode} ${from} ${to} && touch -d @${stamp} ${to}`;
    writeFileSync(join(work, 'run'), bytes);
    for (const [unit, content] of Object.entries(scenario.units)) writeFileSync(join(work, unit), content);
    // Bytes, mode, owner and modification time of each file, and each unit's links and state, as systemd has them.
    const facts = () => box.sh(`for f in ${files.join(' ')}; do find "$f" -printf '%p %m %U %G %T@ '; sha256sum < "$f"; done
      for u in ${units.join(' ')}; do find /etc/systemd/system -type l -name "$u" -printf '%p -> %l\n'; echo "$u $(systemctl is-active "$u") $(systemctl is-enabled "$u")"; done`);
    await box.sh([install(join(work, 'run'), scenario.file, '0755'), ...units.map((u) => install(join(work, u), `/etc/systemd/system/${u}`, '0644')), 'systemctl daemon-reload', scenario.start].join('\n'));
    let investigation: string | undefined;
    try {
      const before = await facts();
      const { id, proposed } = await investigated({ ...scenario, launchers: [] }, sha256(bytes), systemdDeviceId);
      investigation = id;
      await approveAll(proposed);
      await statusOf(id, ['remediated']);

      // Seen from outside the agent: no process runs the file, the file, the unit files and their links are gone, and systemd cannot start them.
      expect(await box.sh(`ls -l /proc/[0-9]*/exe 2>/dev/null | grep -c -- '-> ${scenario.file}$' || true`)).toBe('0\n');
      expect(await box.sh(`ls ${files.join(' ')} 2>&1 || true`)).toBe(files.map((f) => `ls: cannot access '${f}': No such file or directory\n`).join(''));
      expect(await box.sh(`find /etc/systemd/system ${units.map((u) => `-name '${u}'`).join(' -o ')}`)).toBe('');
      for (const unit of units) expect((await box.run('systemctl', ['start', unit])).stderr, unit).toMatch(/not found/);

      await undoAll(proposed);
      expect(await facts()).toBe(before);
    } finally {
      await settle(investigation);
      await box.sh(`systemctl disable --now ${units.join(' ')} || true; rm -f ${files.join(' ')}; systemctl daemon-reload`);
    }
  }

  it('T1543.002 a systemd service running it, on a real systemd: stopped, its unit file and link removed; undo gives back the unit byte for byte, enabled and running', async () => {
    const unit = 'dbus-session-helper.service';
    await attackOnSystemd({
      name: 'systemd service', technique: 'T1543.002', file: DROPPER(3),
      units: { [unit]: `[Unit]\nDescription=D-Bus session helper\n\n[Service]\nExecStart=${RUN(3)}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n` },
      start: `systemctl enable --now ${unit}`,
      expected: [['stop_and_quarantine_file', DROPPER(3), {}], ['stop_service', unit, { removeUnitFile: true }]],
    });
  });

  it('T1053.006 a systemd timer starting a service that runs it: the service stopped and removed, the timer removed; undo starts both again', async () => {
    await attackOnSystemd({
      name: 'systemd timer', technique: 'T1053.006', file: DROPPER(11),
      units: {
        'apt-daily-check.service': `[Unit]\nDescription=Daily apt check\n\n[Service]\nExecStart=${RUN(11)}\n`,
        'apt-daily-check.timer': '[Unit]\nDescription=Daily apt check\n\n[Timer]\nOnBootSec=15min\nOnUnitActiveSec=1h\n\n[Install]\nWantedBy=timers.target\n',
      },
      start: 'systemctl enable --now apt-daily-check.timer && systemctl start apt-daily-check.service',
      // This timer, like most, names no Unit=: it starts the service of its own name.
      expected: [
        ['stop_and_quarantine_file', DROPPER(11), {}],
        ['stop_service', 'apt-daily-check.service', { removeUnitFile: true }],
        ['remove_scheduled_task', 'apt-daily-check.timer', {}],
      ],
    });
  });

  it('T1546.004 shell startup: the line in /root/.bashrc goes, the rest of it stays, and the profile.d script goes whole', async () => {
    const line = `(${RUN(4)} &) >/dev/null 2>&1`;
    await attack({
      name: 'shell profile', technique: 'T1546.004', file: DROPPER(4),
      launchers: [
        { path: '/root/.bashrc', content: `${BASHRC}${line}\n`, mode: 0o644, after: BASHRC },
        { path: '/etc/profile.d/zz-locale.sh', content: `nohup ${RUN(4)} >/dev/null 2>&1 &\n`, mode: 0o644, after: null },
      ],
      expected: [
        ['stop_and_quarantine_file', DROPPER(4), {}],
        ['remove_persistence', '/root/.bashrc', { line }],
        ['remove_persistence', '/etc/profile.d/zz-locale.sh', {}],
      ],
    });
  });

  it('T1098.004 a forced command in /root/.ssh/authorized_keys: the attacker\'s key goes, the administrator\'s stays', async () => {
    mkdirSync(inside('/root/.ssh'), { recursive: true, mode: 0o700 });
    await attack({
      name: 'authorized_keys backdoor', technique: 'T1098.004', file: DROPPER(5),
      launchers: [{ path: '/root/.ssh/authorized_keys', content: `${BENIGN_KEY}\n${ATTACKER_KEY}\n`, mode: 0o600, after: `${BENIGN_KEY}\n` }],
      expected: [['stop_and_quarantine_file', DROPPER(5), {}], ['remove_persistence', '/root/.ssh/authorized_keys', { line: ATTACKER_KEY }]],
    });
  });

  it('T1574.006 /etc/ld.so.preload naming only the attacker\'s library: the library is quarantined and the file goes whole', async () => {
    await attack({
      name: 'ld.so.preload', technique: 'T1574.006', file: LIBRARY, library: true,
      launchers: [{ path: '/etc/ld.so.preload', content: `${LIBRARY}\n`, mode: 0o644, after: null }],
      // Every line of ld.so.preload is the attacker's: the file goes whole, as launchers.ts documents.
      expected: [['quarantine_file', LIBRARY, {}], ['remove_persistence', '/etc/ld.so.preload', {}]],
    });
  });

  it('T1574.006 /etc/ld.so.preload naming a benign library too: only the attacker\'s line goes', async () => {
    const benign = preloadableSystemLibrary();
    await attack({
      name: 'ld.so.preload, shared', technique: 'T1574.006', file: LIBRARY, library: true,
      launchers: [{ path: '/etc/ld.so.preload', content: `${benign}\n${LIBRARY}\n`, mode: 0o644, after: `${benign}\n` }],
      expected: [['quarantine_file', LIBRARY, {}], ['remove_persistence', '/etc/ld.so.preload', { line: LIBRARY }]],
    });
  });

  it('T1037.004 a line of /etc/rc.local: the line goes, the rest of the script stays', async () => {
    const line = `${RUN(7)} &`;
    const script = '#!/bin/sh -e\n#\n# rc.local\n#\n/usr/sbin/ethtool -K eth0 gro off || true\n';
    await attack({
      name: '/etc/rc.local', technique: 'T1037.004', file: DROPPER(7),
      launchers: [{ path: '/etc/rc.local', content: `${script}${line}\nexit 0\n`, mode: 0o755, after: `${script}exit 0\n` }],
      expected: [['stop_and_quarantine_file', DROPPER(7), {}], ['remove_persistence', '/etc/rc.local', { line }]],
    });
  });

  it('T1546.017 a udev rule that runs it: the rule file goes whole', async () => {
    await attack({
      name: 'udev rule', technique: 'T1546.017', file: DROPPER(8),
      launchers: [{ path: '/etc/udev/rules.d/99-usb-power.rules', content: `ACTION=="add", SUBSYSTEM=="usb", RUN+="${DROPPER(8)}"\n`, mode: 0o644, after: null }],
      expected: [['stop_and_quarantine_file', DROPPER(8), {}], ['remove_persistence', '/etc/udev/rules.d/99-usb-power.rules', {}]],
    });
  });

  it('T1547.013 an XDG autostart entry in root\'s home: the entry goes whole', async () => {
    const entry = `[Desktop Entry]\nType=Application\nName=Session helper\nExec=${DROPPER(9)}\nX-GNOME-Autostart-enabled=true\n`;
    await attack({
      name: 'XDG autostart', technique: 'T1547.013', file: DROPPER(9),
      launchers: [{ path: '/root/.config/autostart/session-helper.desktop', content: entry, mode: 0o644, after: null }],
      expected: [['stop_and_quarantine_file', DROPPER(9), {}], ['remove_persistence', '/root/.config/autostart/session-helper.desktop', {}]],
    });
  });

  it('T1053.003 a script in /etc/cron.daily that run-parts starts: the script goes', async () => {
    await attack({
      name: '/etc/cron.daily script', technique: 'T1053.003', file: DROPPER(10),
      launchers: [{ path: '/etc/cron.daily/logrotate-helper', content: `#!/bin/sh\n${RUN(10)} &\n`, mode: 0o755, after: null }],
      // remove_scheduled_task removes run-parts scripts (scheduled-task.linux.ts): cron starts this one every day as surely as a cron.d line.
      expected: [['stop_and_quarantine_file', DROPPER(10), {}], ['remove_scheduled_task', '/etc/cron.daily/logrotate-helper', {}]],
    });
  });

  it('a medium alert on a file an installed package owns unchanged (/usr/bin/env): no threats found, nothing proposed', async () => {
    const id = await alert('/usr/bin/env', sha256(readFileSync('/usr/bin/env')), 'medium');
    const seen = await statusOf(id, ['no_threats_found', 'pending_action', 'remediated', 'partially_remediated', 'failed']);
    const proposed = (seen.actions as Action[]).filter((a) => a.type !== 'collect_evidence');
    measured.push({ scenario: 'package-owned file (benign)', technique: '-', expected: [], proposed: sorted(proposed.map(asProposal)), duplicates: duplicatesAmong(proposed) });
    expect(seen.investigation.status).toBe('no_threats_found');
    expect(proposed).toEqual([]);
    const asked = (seen.actions as Action[]).find((a) => a.type === 'collect_evidence')!;
    const report = JSON.parse((await ctx.services.actions.get(systemActor(), asked.id)).action.result!.output!);
    expect(report.files).toEqual([expect.objectContaining({ path: '/usr/bin/env', owner: expect.objectContaining({ kind: 'package', verified: true }) })]);
    expect(seen.entities.find((e: { path: string }) => e.path === '/usr/bin/env')).toMatchObject({ verdict: 'no_threats_found' });
  });

  it('a medium alert on a running program a Debian package installed in /var/tmp: no threats found, nothing proposed', async () => {
    // A vendor's package that puts its agent in a temp folder, installed with dpkg in the sandbox: its own copy of dpkg's
    // database is bound over /var/lib/dpkg there, so this machine's packages and log are never touched.
    const path = '/var/tmp/vendor-tools/bin/vendor-agent';
    const build = join(root, 'vendor-tools');
    const binary = Buffer.concat([readFileSync('/bin/sleep'), Buffer.from(`\nvendor-agent ${randomUUID()}\n`)]);
    mkdirSync(join(build, 'DEBIAN'), { recursive: true });
    mkdirSync(join(build, dirname(path)), { recursive: true });
    writeFileSync(join(build, 'DEBIAN', 'control'), 'Package: vendor-tools\nVersion: 1.0\nArchitecture: all\nMaintainer: Vendor <ops@vendor.example>\nDescription: vendor agent\n');
    writeFileSync(join(build, path), binary, { mode: 0o755 });
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', build, `${build}.deb`], { stdio: 'ignore' });
    execFileSync('cp', ['-a', '/var/lib/dpkg', join(root, 'dpkg')]);
    execFileSync('nsenter', ['-t', String(pid), '-m', 'mount', '--bind', join(root, 'dpkg'), '/var/lib/dpkg']);
    execFileSync('nsenter', ['-t', String(pid), '-m', 'dpkg', '--log=/dev/null', '-i', `${build}.deb`], { stdio: 'ignore' });
    const running = runInside(path, ['300']);
    try {
      const id = await alert(path, sha256(binary), 'medium');
      const seen = await statusOf(id, ['no_threats_found', 'pending_action', 'remediated', 'partially_remediated', 'failed']);
      const proposed = (seen.actions as Action[]).filter((a) => a.type !== 'collect_evidence');
      measured.push({ scenario: 'package-owned program in /var/tmp (benign)', technique: '-', expected: [], proposed: sorted(proposed.map(asProposal)), duplicates: duplicatesAmong(proposed) });
      expect(seen.investigation.status).toBe('no_threats_found');
      expect(proposed).toEqual([]);
      expect(seen.entities.find((e: { path: string }) => e.path === path)).toMatchObject({ kind: 'process', verdict: 'no_threats_found', reason: expect.stringMatching(/installed by the dpkg package vendor-tools and unchanged since$/) });
      expect(running.exitCode).toBeNull();
      expect(existsSync(inside(path))).toBe(true);
    } finally {
      running.kill();
    }
  });

  it('finds every expected remediation (recall 100 %), proposes almost nothing else (precision ≥ 95 %) and nothing twice', () => {
    tallied = true;
    const { recall, precision, duplicates } = totals(measured);
    expect(measured).toHaveLength(14);
    expect({ recall, duplicates }).toEqual({ recall: 1, duplicates: 0 });
    expect(precision).toBeGreaterThanOrEqual(0.95);
    // The developer tool beside the attacks was never proposed, and still runs.
    expect(measured.flatMap((m) => m.proposed).filter((p) => p.includes(developer.path))).toEqual([]);
    expect(developer.process.exitCode).toBeNull();
  });
});

function totals(rows: readonly Measured[]) {
  const expected = rows.reduce((n, r) => n + r.expected.length, 0);
  const proposed = rows.reduce((n, r) => n + r.proposed.length, 0);
  const found = rows.reduce((n, r) => n + r.expected.filter((e) => r.proposed.includes(e)).length, 0);
  const correct = rows.reduce((n, r) => n + r.proposed.filter((p) => r.expected.includes(p)).length, 0);
  return {
    expected, proposed, recall: expected === 0 ? 1 : found / expected, precision: proposed === 0 ? 1 : correct / proposed,
    duplicates: rows.reduce((n, r) => n + r.duplicates, 0),
  };
}

/** The table for bench/RESULTS.md: per scenario what was expected and proposed, then recall and precision over all. */
function writeReport(rows: readonly Measured[]): void {
  if (rows.length === 0) return;
  const percent = (x: number): string => `${(x * 100).toFixed(1)} %`;
  const missed = (r: Measured) => r.expected.filter((e) => !r.proposed.includes(e));
  const extra = (r: Measured) => r.proposed.filter((p) => !r.expected.includes(p));
  const t = totals(rows);
  const lines = [
    `## Detection quality (attack scenarios, ${TEST_DIALECT})`,
    '',
    'Real persistence techniques planted on a sandboxed Linux endpoint with a real agent; an alert names the attacker\'s file and the',
    'automated investigation proposes remediation. Expected: the file\'s quarantine and the removal of each launcher, nothing else.',
    'Written by `packages/agent/src/attack-scenarios.test.ts`.',
    '',
    '| scenario | technique | expected | proposed | missed | extra | duplicates |',
    '|---|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.scenario} | ${r.technique} | ${r.expected.length} | ${r.proposed.length} | ${missed(r).length} | ${extra(r).length} | ${r.duplicates} |`),
    `| **total** | | ${t.expected} | ${t.proposed} | ${rows.reduce((n, r) => n + missed(r).length, 0)} | ${rows.reduce((n, r) => n + extra(r).length, 0)} | ${t.duplicates} |`,
    '',
    `Recall ${percent(t.recall)}, precision ${percent(t.precision)}, duplicates ${t.duplicates}.`,
  ];
  const differences = rows.flatMap((r) => [...missed(r).map((p) => `- ${r.scenario}: missed ${p}`), ...extra(r).map((p) => `- ${r.scenario}: extra ${p}`)]);
  if (differences.length > 0) lines.push('', 'Differences:', '', ...differences);
  mkdirSync(dirname(REPORT), { recursive: true });
  writeFileSync(REPORT, `${lines.join('\n')}\n`);
}
