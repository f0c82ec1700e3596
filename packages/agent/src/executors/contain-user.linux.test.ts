import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ContainUserSnapshot, processesOf } from './contain-user.linux.ts';
import { type ExecutorSandbox, executorSandbox } from './test/executor-sandbox.ts';
import { RecordingRunner, failed, ok } from './test/recording-runner.ts';

/** The accounts live in the sandbox's copy of /etc: this machine's own users are never touched. */
let sandbox: ExecutorSandbox;

/** The user's line of /etc/shadow, read straight from the file and not through the code under test. */
function shadowLine(name: string): string {
  const line = readFileSync(sandbox.path('/etc/shadow'), 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`${name} is not in /etc/shadow`);
  return line;
}
const shadowField = (name: string, index: number): string => shadowLine(name).split(':')[index]!;

const contain = (name: string, options: { runner?: RecordingRunner; parameters?: Record<string, boolean> } = {}) =>
  sandbox.act('containUser', { type: 'contain_user', entity: { name }, parameters: options.parameters ?? {} }, { runner: options.runner });
/** Snapshots travel through the agent's JSON journal; release gets them the same way. */
const release = (name: string, priorSnapshot?: unknown) => sandbox.act('releaseUser', { type: 'release_user', entity: { name } }, { priorSnapshot });

const run = (command: string, args: string[], input?: string): string => sandbox.run(command, args, input);

function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
}

describe('contain user / release user on local accounts (in a copy of /etc in a mount namespace)', () => {
  const children: ChildProcess[] = [];

  function createUser(options: { password?: string; expiry?: string } = {}): string {
    const name = `quelltest${Math.random().toString(36).slice(2, 9)}`;
    // A uid far from this machine's own users: containment ends every process that runs as it.
    run('useradd', ['-m', '-u', String(200_000 + Math.floor(Math.random() * 100_000)), name]);
    if (options.password) run('chpasswd', [], `${name}:${options.password}\n`);
    if (options.expiry) run('chage', ['-E', options.expiry, name]);
    return name;
  }

  function startAs(name: string, how: 'setpriv' | 'runuser' | 'forking'): ChildProcess {
    const child = how === 'runuser'
      ? sandbox.spawn('runuser', ['-u', name, '--', 'sleep', '300'])
      : sandbox.spawn('setpriv', [`--reuid=${name}`, `--regid=${name}`, '--init-groups', ...(how === 'forking' ? ['sh', '-c', 'while :; do sleep 300 & sleep 0.01; done'] : ['sleep', '300'])]);
    children.push(child);
    return child;
  }

  async function waitForProcessesOf(name: string, count: number): Promise<void> {
    const uid = Number(run('id', ['-u', name]).trim());
    // Judged on one reading: the forking loop's short sleeps come and go between two.
    let running = processesOf(uid).length;
    for (let i = 0; i < 100 && running < count; i++) {
      await new Promise((r) => setTimeout(r, 50));
      running = processesOf(uid).length;
    }
    expect(running).toBeGreaterThanOrEqual(count);
  }

  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });
  beforeAll(async () => {
    sandbox = await executorSandbox();
  });
  afterAll(() => sandbox?.close());

  it('locks and expires the account and ends its processes; release puts the shadow line back exactly', async () => {
    const name = createUser({ password: 'correct horse battery staple' });
    const before = shadowLine(name);
    expect(shadowField(name, 1)).toMatch(/^\$/);
    const direct = startAs(name, 'setpriv');
    const viaRunuser = startAs(name, 'runuser');
    const forking = startAs(name, 'forking');
    await waitForProcessesOf(name, 6);

    const contained = await contain(name);
    expect(shadowField(name, 1)).toBe(`!${before.split(':')[1]}`);
    expect(shadowField(name, 7)).toBe('1');
    expect(await exited(direct)).toBe('SIGKILL');
    await exited(viaRunuser);
    expect(await exited(forking)).toBe('SIGKILL');
    expect(processesOf(Number(run('id', ['-u', name]).trim()))).toEqual([]);
    expect(contained.output).toContain('password locked');
    expect(contained.output).toContain('ended processes');
    const snapshot = contained.snapshot as ContainUserSnapshot;
    expect(snapshot).toMatchObject({ name, wasLocked: false, expiry: '' });
    expect(JSON.stringify(snapshot)).not.toContain(before.split(':')[1]);

    // su runs PAM's account stack (runuser skips it): the expired account is refused.
    expect(() => run('su', ['-s', '/bin/sh', '-c', 'true', name])).toThrow(/expired/);

    const released = await release(name, snapshot);
    expect(shadowLine(name)).toBe(before);
    expect(released.output).toContain('unlocked');
    expect(released.output).toContain('back to never');
    run('su', ['-s', '/bin/sh', '-c', 'true', name]);
  });

  it('also ends the processes of its rootless containers, which run as its subordinate uids (/etc/subuid)', async () => {
    const name = createUser();
    // A range of its own, far from any other account's, as podman's rootless containers use.
    const start = 1_000_000_000 + Math.floor(Math.random() * 10_000) * 65_536;
    appendFileSync(sandbox.path('/etc/subuid'), `${name}:${start}:65536\n`);
    const containerProcess = sandbox.spawn('setpriv', [`--reuid=${start + 1000}`, `--regid=${start + 1000}`, '--clear-groups', 'sleep', '300']);
    children.push(containerProcess);
    for (let i = 0; i < 100 && processesOf(start + 1000).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(processesOf(start + 1000)).toHaveLength(1);

    const contained = await contain(name);
    expect(await exited(containerProcess)).toBe('SIGKILL');
    expect(contained.output).toContain(`${start}-${start + 65_535}`);
    expect(contained.snapshot).toMatchObject({ subordinateUids: expect.arrayContaining([{ start, count: 65_536 }]) });
    await release(name, contained.snapshot);
  });

  it('an account that was already locked, with an expiry date, stays locked with that same date after release', async () => {
    const name = createUser({ password: 'hunter2', expiry: '2999-01-01' });
    run('usermod', ['-L', name]);
    const before = shadowLine(name);
    expect(shadowField(name, 1)).toMatch(/^!\$/);
    expect(shadowField(name, 7)).not.toBe('');

    const contained = await contain(name);
    expect(contained.output).toContain('was already locked');
    expect(contained.output).toContain('no process was running');
    expect(shadowField(name, 1)).toBe(before.split(':')[1]);
    expect(shadowField(name, 7)).toBe('1');

    const released = await release(name, contained.snapshot);
    expect(shadowLine(name)).toBe(before);
    expect(released.output).toContain('stays locked');
  });

  it('an account without any password ("!" from useradd) is back to exactly that', async () => {
    const name = createUser();
    const before = shadowLine(name);
    const contained = await contain(name);
    await release(name, contained.snapshot);
    expect(shadowLine(name)).toBe(before);
  });

  it('keeps a password set while the account was contained, and says so', async () => {
    const name = createUser({ password: 'first' });
    const contained = await contain(name);
    run('chpasswd', [], `${name}:second\n`);
    run('usermod', ['-L', name]);
    const changed = shadowField(name, 1).slice(1);
    const released = await release(name, contained.snapshot);
    expect(shadowField(name, 1)).toBe(changed);
    expect(shadowField(name, 7)).toBe('');
    expect(released.output).toContain('the password was changed while the account was contained');
  });

  it('refuses root, system accounts and names that are not user names, before changing anything', async () => {
    const runner = new RecordingRunner((command, args) => {
      if (command === 'getent' && args[1] === 'toor') return ok('toor:x:0:0::/root:/bin/sh\n');
      if (command === 'getent' && args[1] === 'daemon') return ok('daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n');
      if (command === 'getent' && args[1] === 'nobody') return ok('nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n');
      return failed(2, '');
    });
    await expect(contain('toor', { runner, parameters: { allowSystemAccount: true } })).rejects.toThrow(/uid 0/);
    await expect(contain('daemon', { runner })).rejects.toThrow(/system account.*allowSystemAccount/);
    await expect(contain('nobody', { runner })).rejects.toThrow(/system account/);
    for (const name of ['-L', 'a b', 'x;reboot', '../etc', 'a'.repeat(40), 'ok\nroot']) {
      await expect(contain(name, { runner })).rejects.toThrow(/not a valid local user name/);
    }
    await expect(contain('quellnosuchuser', { runner })).rejects.toThrow(/no user quellnosuchuser/);
    expect(runner.calls.every((c) => c.command === 'getent')).toBe(true);
  });

  it('release refuses without a containment record, or when the name now belongs to another uid', async () => {
    const name = createUser();
    await expect(release(name)).rejects.toThrow(/no containment record/);
    const uid = Number(run('id', ['-u', name]).trim());
    const forged: ContainUserSnapshot = { name, uid: uid + 1, wasLocked: false, passwordEmpty: false, passwordFieldSha256: '', expiry: '', endedPids: [] };
    const before = shadowLine(name);
    await expect(release(name, forged)).rejects.toThrow(/not the contained account/);
    expect(shadowLine(name)).toBe(before);
  });
});
