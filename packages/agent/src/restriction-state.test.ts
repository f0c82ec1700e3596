import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { AGENT_BUNDLE, NO_PERIODIC_CHECK_SECONDS, quell, waitFor, waitForAction } from './test/helper.ts';

/** The per-mount options of the topmost mount at `path`, as the given process sees them. */
function mountOptions(pid: number, path: string): string[] {
  const lines = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((line) => line.split(' '));
  const mine = lines.filter((fields) => fields[4] === path);
  return mine.length === 0 ? [] : mine[mine.length - 1]![5]!.split(',');
}

/**
 * Code restriction is desired state too. Each agent runs in a private mount
 * namespace: its remounts never touch this host, and a new namespace is what
 * a reboot looks like to the mounts — fresh, unrestricted.
 */
describe(`code restriction re-applied after a reboot (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  const work = mkdtempSync(join(tmpdir(), 'quell-restrict-'));
  const dir = join(work, 'agent');
  let agent: { child: ChildProcess; log: () => string } | undefined;
  let deviceId: string;

  const start = () => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', process.execPath, AGENT_BUNDLE, 'run', '--dir', dir, '--watch=', '--exec-guard=', `--drift-check-seconds=${NO_PERIODIC_CHECK_SECONDS}`]);
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    return { child, log: () => log };
  };
  const stop = async () => {
    if (!agent) return;
    const exited = new Promise((resolve) => agent!.child.once('exit', resolve));
    agent.child.kill('SIGTERM');
    await exited;
  };
  const settled = (id: string) => waitForAction(ctx(), id);

  beforeAll(async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'lab', uses: 1, expiresInDays: 1 });
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(await quell(['agent', 'enrol', '--server', ctx().url, '--token', secret, '--dir', dir]))![1]!;
  });
  afterAll(async () => {
    await stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('restricts, is restricted again in a fresh mount namespace and when remounted with exec while running, and undo lifts it', async () => {
    expect(mountOptions(process.pid, '/tmp')).not.toContain('noexec');
    agent = start();
    await waitFor('the agent to connect', async () => (agent!.log().includes('"connected"') ? true : undefined));
    const created = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions', { type: 'restrict_code_execution', deviceId, source: 'manual', entity: { name: 'device' } });
    const restricted = await settled(created.json().id);
    expect(restricted.status, JSON.stringify(restricted.result)).toBe('completed');
    expect(mountOptions(agent.child.pid!, '/tmp')).toContain('noexec');

    // "Reboot": a new agent process in a new mount namespace starts unrestricted and restricts again.
    await stop();
    agent = start();
    await waitFor('the restriction to be re-applied', async () => (agent!.log().includes('code restriction re-applied') ? true : undefined));
    expect(mountOptions(agent.child.pid!, '/tmp')).toContain('noexec');
    expect(mountOptions(process.pid, '/tmp')).not.toContain('noexec');

    await waitFor('the agent to connect', async () => (agent!.log().split('"connected"').length > 1 ? true : undefined));

    // Someone allows code there again while the agent runs: it is restricted again within seconds, and counted.
    execFileSync('nsenter', ['-t', String(agent.child.pid), '-m', 'mount', '-o', 'remount,bind,exec', '/tmp']);
    const drift = await waitFor('the drift to be reported', async () => (await ctx().services.actions.get(ctx().users.security_reader.actor, restricted.id)).drift[0]);
    expect(drift).toMatchObject({ deviceId, count: 1, repaired: true, detail: expect.stringMatching(/^code execution was allowed again in \/tmp/) });
    expect(mountOptions(agent.child.pid!, '/tmp')).toContain('noexec');
    expect(mountOptions(process.pid, '/tmp')).not.toContain('noexec');

    const undo = await ctx().request(ctx().users.security_operator, 'POST', '/api/actions/undo', { ids: [restricted.id] });
    const lifted = await settled(undo.json().items[0].id);
    expect(lifted.status, JSON.stringify(lifted.result)).toBe('completed');
    expect(mountOptions(agent.child.pid!, '/tmp')).not.toContain('noexec');
  });
});
