import { execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Action } from '@quell/contracts';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { execGuardHelper } from './exec-guard.linux.ts';
import { type AgentProcess, agentProcessIn, quell, spawnAgent, waitFor } from './test/helper.ts';

const exec = promisify(execFile);

/**
 * Execution of blocked files refused by a real agent: its exec guard holds
 * every execution on one mount (a folder mounted in the agent's private
 * mount namespace, so that nothing else on this machine is held) and
 * refuses the files its block indicators name.
 */
describe(`the exec guard of a real agent (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  const work = mkdtempSync(join(tmpdir(), 'quell-exec-'));
  const guarded = join(work, 'guarded');
  const agentDir = join(work, 'agent');
  let agent: AgentProcess;
  let deviceId: string;
  let agentPid: number;

  beforeAll(async () => {
    mkdirSync(guarded);
    const etc = join(work, 'etc');
    await exec('cp', ['-a', '/etc', etc]);
    // A login shell on the guarded mount, as the agent's /etc/shells lists it: what it never quarantines, it never refuses to run.
    appendFileSync(join(etc, 'shells'), `${join(guarded, 'login-shell')}\n`);
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'exec', uses: 1, expiresInDays: 1 });
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(await quell(['agent', 'enrol', '--server', ctx().url, '--token', secret, '--dir', agentDir]))![1]!;
    // The folder mounted on itself in the agent's mount namespace: a mount of its own, that only processes there use.
    agent = spawnAgent(agentDir, undefined, { bundle: true, sandbox: { etc, binds: { [guarded]: guarded } }, execGuard: [guarded] });
    await waitFor('the agent to connect with its exec guard on', async () => (agent.log().includes('exec guard on') && agent.log().includes('"msg":"connected"') ? true : undefined), 30_000);
    agentPid = await waitFor('the agent process', async () => agentProcessIn(agent.child.pid!));
  });
  afterAll(async () => {
    await agent?.stop();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    rmSync(work, { recursive: true, force: true });
  });

  /** A program of its own (a copy of `true` with a unique tail): its hash names it alone. */
  const program = (name: string, tail: string = randomUUID()): { path: string; sha256: string; tail: string } => {
    const path = join(guarded, name);
    copyFileSync('/usr/bin/true', path);
    appendFileSync(path, tail);
    return { path, sha256: createHash('sha256').update(readFileSync(path)).digest('hex'), tail };
  };
  /** Runs a program the way a process in the agent's mount namespace does: its exit code and what it said. */
  const run = async (path: string): Promise<{ code: number; stderr: string }> => {
    try {
      await exec('nsenter', ['-t', String(agentPid), '-m', path]);
      return { code: 0, stderr: '' };
    } catch (error) {
      const failed = error as { code?: number; stderr?: string };
      return { code: failed.code ?? -1, stderr: failed.stderr ?? '' };
    }
  };
  const statesApplied = () => agent.log().split('\n').filter((line) => line.includes('containment state applied')).length;
  const block = async (sha256: string, action: 'block' | 'block_and_remediate' = 'block'): Promise<string> => {
    const before = statesApplied();
    const response = await ctx().request(ctx().users.security_admin, 'POST', '/api/indicators', { type: 'sha256', value: sha256, action, title: `block ${sha256.slice(0, 8)}` });
    expect(response.statusCode, response.body).toBe(201);
    await waitFor('the agent to apply the new state', async () => (statesApplied() > before ? true : undefined));
    return response.json().id;
  };
  const antivirusActions = async (): Promise<Action[]> =>
    (await ctx().request(ctx().users.security_reader, 'GET', `/api/actions?view=history&source=antivirus&deviceId=${deviceId}&limit=100`)).json().items;

  it('refuses to run a file blocked and remediated, one that ran before the block too; reports the refusal as a hit and quarantines the file with an alert; other files run', async () => {
    const tool = program('tool');
    const other = program('other');
    expect(await run(tool.path)).toEqual({ code: 0, stderr: '' });
    const id = await block(tool.sha256, 'block_and_remediate');

    const refused = await run(tool.path);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Operation not permitted/);
    expect(await run(other.path)).toEqual({ code: 0, stderr: '' });

    const quarantine = await waitFor('the refused file to be quarantined', async () => (await antivirusActions()).find((a) => a.entity.path === tool.path), 15_000);
    expect(quarantine).toMatchObject({ status: 'completed', entity: { sha256: tool.sha256 } });
    expect(existsSync(tool.path)).toBe(false);
    const hits = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${id}`)).json().items;
    const [row] = await waitFor('the refusal to be reported', async () => ((await hits()).length > 0 ? hits() : undefined), 15_000);
    expect(row.lastHit).toMatchObject({ action: 'block', path: tool.path, process: 'nsenter' });
    const alerts = await ctx().store.db.selectFrom('alerts').select('title').where('device_id', '=', deviceId).where('detection_source', '=', 'antivirus').execute();
    expect(alerts.map((a) => a.title)).toContain('Malware quarantined: Block indicator');
  });

  it('lets a blocked login shell run all the same, and says why: refusing it would lock out the accounts that use it', async () => {
    const shell = program('login-shell');
    await block(shell.sha256);
    expect(await run(shell.path)).toEqual({ code: 0, stderr: '' });
    await waitFor('the agent to say why', async () => (agent.log().includes('a blocked file was let run') ? true : undefined));
    expect(agent.log()).toContain('a login shell listed in /etc/shells');
    expect(existsSync(shell.path)).toBe(true);
  });

  it('looks again at a file allowed before once it is modified in place: rewritten into a blocked program, it is refused', async () => {
    const tool = program('rewritten');
    const blockedLater = program('model-of-rewritten');
    await block(blockedLater.sha256);
    rmSync(blockedLater.path);
    expect(await run(tool.path)).toEqual({ code: 0, stderr: '' });
    expect(await run(tool.path)).toEqual({ code: 0, stderr: '' });
    // Same inode, new content: the blocked program's bytes.
    const { fd, bytes } = { fd: openSync(tool.path, 'r+'), bytes: readFileSync('/usr/bin/true') };
    writeSync(fd, Buffer.concat([bytes, Buffer.from(blockedLater.tail)]), 0, undefined, 0);
    closeSync(fd);
    expect(createHash('sha256').update(readFileSync(tool.path)).digest('hex')).toBe(blockedLater.sha256);
    expect((await run(tool.path)).stderr).toMatch(/Operation not permitted/);
  });

  it('refuses to run a file a block indicator names but leaves it where it is; the refusal is a hit that raises its own alert', async () => {
    const tool = program('kept');
    const id = await block(tool.sha256);
    expect((await run(tool.path)).stderr).toMatch(/Operation not permitted/);
    const hits = async () => (await ctx().request(ctx().users.security_reader, 'GET', `/api/indicators/hits?indicatorId=${id}`)).json().items;
    const [row] = await waitFor('the refusal to be reported', async () => ((await hits()).length > 0 ? hits() : undefined), 15_000);
    expect(row.lastHit).toMatchObject({ action: 'block', path: tool.path, process: 'nsenter' });
    const alerts = await ctx().store.db.selectFrom('alerts').select('title').where('external_id', 'like', `hit:${id}:%`).execute();
    expect(alerts.map((a) => a.title)).toEqual([expect.stringMatching(new RegExp(`^Blocked execution of ${tool.path.replace(/[.]/g, '\\.')} on `))]);
    expect(existsSync(tool.path)).toBe(true);
    expect((await antivirusActions()).some((a) => a.entity.path === tool.path)).toBe(false);
  });

  it('forgets its verdicts when the block list changes: a file blocked and then lifted runs again', async () => {
    const tool = program('again');
    expect(await run(tool.path)).toEqual({ code: 0, stderr: '' });
    const id = await block(tool.sha256);
    expect((await run(tool.path)).code).not.toBe(0);
    const before = statesApplied();
    expect((await ctx().request(ctx().users.security_admin, 'DELETE', `/api/indicators/${id}`)).statusCode).toBe(200);
    await waitFor('the agent to apply the state without the block', async () => (statesApplied() > before ? true : undefined));
    expect(await run(tool.path)).toEqual({ code: 0, stderr: '' });
  });
});

/**
 * The helper alone, with this test in the agent's place: it reads the
 * helper's questions and answers them in the order it chooses. The helper
 * guards a folder mounted on itself in a mount namespace of its own; the
 * programs run there from a shell (the helper lets the agent's own children
 * through unasked, and the shell is not one).
 */
describe('the exec guard helper', () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-guard-'));
  const helperPath = execGuardHelper()!;
  const helper = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" "$0" && exec "$1" "$0"', work, helperPath]);
  const questions: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  createInterface({ input: helper.stdout }).on('line', (line) => (waiting.length > 0 ? waiting.shift()!(line) : questions.push(line)));
  const nextLine = (): Promise<string> => (questions.length > 0 ? Promise.resolve(questions.shift()!) : new Promise((resolve) => waiting.push(resolve)));
  const answer = (ask: string, verdict: 'allow' | 'deny' | 'flush') => helper.stdin.write(verdict === 'flush' ? 'flush\n' : `${ask.split(' ')[1]} ${verdict}\n`);
  /** Runs a program in the helper's mount namespace: what the shell says of it. */
  const run = (path: string) => exec('nsenter', ['-t', String(helper.pid), '-m', 'sh', '-c', '"$0" 2>&1; echo "exit $?"', path]).then((result) => result.stdout.trim());
  const program = (name: string): string => {
    const path = join(work, name);
    copyFileSync('/usr/bin/true', path);
    appendFileSync(path, randomUUID());
    return path;
  };

  beforeAll(async () => expect(await nextLine()).toBe('ready'));
  afterAll(() => {
    helper.kill();
    rmSync(work, { recursive: true, force: true });
  });

  it('holds executions side by side: one is answered while another asked before it is still held', async () => {
    const [slow, quick] = [program('slow'), program('quick')];
    let slowDone = false;
    const slowRun = run(slow).then((said) => ((slowDone = true), said));
    const askedSlow = await nextLine();
    expect(askedSlow).toMatch(/^ask \d+ \d+ \d+$/);
    const quickRun = run(quick);
    const askedQuick = await nextLine();
    answer(askedQuick, 'deny');
    expect(await quickRun).toMatch(/Operation not permitted[\s\S]*exit 126$/);
    expect(slowDone).toBe(false);
    answer(askedSlow, 'allow');
    expect(await slowRun).toBe('exit 0');
  });

  it('does not hold an allowed file again until the block list changes: no question at all, then one after a flush', async () => {
    const tool = program('tool');
    const first = run(tool);
    answer(await nextLine(), 'allow');
    expect(await first).toBe('exit 0');
    expect(await run(tool)).toBe('exit 0');
    expect(questions).toEqual([]);
    answer('', 'flush');
    const again = run(tool);
    answer(await nextLine(), 'deny');
    expect(await again).toMatch(/exit 126$/);
  });
});
