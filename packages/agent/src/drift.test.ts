import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandPayload } from '@quell/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT } from '@quell/server/testing';
import { agentLogLines } from './test/channel.ts';
import { type Answer, type HostileServer, startHostileServer } from './test/hostile-server.ts';
import { type AgentProcess, NO_PERIODIC_CHECK_SECONDS, spawnAgent, waitFor } from './test/helper.ts';

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');
const completed = (answer: Answer): string => {
  if (answer.t !== 'result' || answer.result.outcome !== 'completed') throw new Error(`not completed: ${JSON.stringify(answer)}`);
  return answer.result.output ?? '';
};

/**
 * A real agent, in its own mount namespace (its /etc is a copy), with its
 * periodic drift check an hour apart: what it removed coming back — a cron
 * file, a cron line, a quarantined file — is removed again within moments
 * because inotify said so, and each drift is reported signed on the action
 * whose effect it was. Something else in a removed file's place is reported
 * once and left for an analyst.
 */
describe(`a real agent keeps removed things removed, on the kernel's word (${TEST_DIALECT})`, () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-drift-'));
  const etc = join(work, 'etc');
  const files = join(work, 'files');
  const agentDir = join(work, 'agent');
  let server: HostileServer;
  let agent: AgentProcess;

  beforeAll(async () => {
    execFileSync('cp', ['-a', '/etc', etc]);
    mkdirSync(join(etc, 'cron.d'), { recursive: true });
    mkdirSync(files);
    server = await startHostileServer();
    server.enrol(agentDir);
    agent = spawnAgent(agentDir, undefined, { bundle: true, sandbox: { etc }, driftCheckSeconds: NO_PERIODIC_CHECK_SECONDS });
    await waitFor('the agent to connect', async () => (agentLogLines(agent.log()).some((l) => l.msg === 'connected') ? true : undefined));
    await server.connected();
  });
  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    if (process.env.QUELL_TEST_VERBOSE) process.stdout.write(agent.log());
    rmSync(work, { recursive: true, force: true });
  });

  const send = (command: Partial<CommandPayload> & Pick<CommandPayload, 'type' | 'entity'>): Promise<Answer> => server.send(command);
  const drifts = (): Array<Record<string, unknown>> => server.frames.filter((f) => f.t === 'drift')
    .map((f) => JSON.parse(Buffer.from((f as { jws: string }).jws.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>);
  /** The next drift report about `actionId`, after the `seen` first ones. */
  const nextDrift = (actionId: string, seen: number) => waitFor(`a drift report on ${actionId}`, async () => drifts().slice(seen).find((d) => (d.actionIds as string[]).includes(actionId)), 10_000);

  it('a removed cron file put back is removed again at once and reported; another file in its place is reported once and left alone', async () => {
    const name = `quell-drift-${randomUUID().slice(0, 8)}`;
    const path = join(etc, 'cron.d', name);
    const job = '* * * * * root /var/tmp/.x/run\n';
    writeFileSync(path, job, { mode: 0o644 });
    const actionId = randomUUID();
    completed(await send({ type: 'remove_scheduled_task', actionId, entity: { name, path: `/etc/cron.d/${name}` } }));
    expect(existsSync(path)).toBe(false);

    let seen = drifts().length;
    writeFileSync(path, job, { mode: 0o644 });
    const removedAgain = await nextDrift(actionId, seen);
    expect(removedAgain).toMatchObject({ effect: 'removed_task', actionIds: [actionId], repaired: true, found: `/etc/cron.d/${name} is back (the removed file, SHA-256 ${sha256(job)})` });
    expect(existsSync(path)).toBe(false);

    seen = drifts().length;
    const other = '* * * * * root /usr/bin/true\n';
    writeFileSync(path, other, { mode: 0o644 });
    const leftAlone = await nextDrift(actionId, seen);
    expect(leftAlone).toMatchObject({ effect: 'removed_task', actionIds: [actionId], repaired: false, found: `another file is at /etc/cron.d/${name} now (SHA-256 ${sha256(other)})` });
    expect(leftAlone.error).toMatch(/left alone/);
    expect(readFileSync(path, 'utf8')).toBe(other);
    // Changes that leave the same finding are not reported again.
    writeFileSync(join(etc, 'cron.d', `${name}-neighbour`), other);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(drifts().slice(seen)).toHaveLength(1);

    // Once the other file is gone, undo puts the removed one back, and it stays.
    rmSync(path);
    rmSync(join(etc, 'cron.d', `${name}-neighbour`));
    completed(await send({ type: 'restore_scheduled_task', entity: { name, path: `/etc/cron.d/${name}` }, undoOf: actionId }));
    expect(readFileSync(path, 'utf8')).toBe(job);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(existsSync(path)).toBe(true);
  });

  it('a removed cron line written back is removed again, every other byte kept', async () => {
    const name = `quell-lines-${randomUUID().slice(0, 8)}`;
    const path = join(etc, 'cron.d', name);
    const keep = '# kept\n0 3 * * * root /usr/local/bin/backup\n';
    const evil = '@reboot root /dev/shm/.k\n';
    writeFileSync(path, `${keep}${evil}`, { mode: 0o600 });
    const actionId = randomUUID();
    completed(await send({ type: 'remove_scheduled_task', actionId, entity: { name, path: `/etc/cron.d/${name}` }, parameters: { line: evil.trimEnd() } }));
    expect(readFileSync(path, 'utf8')).toBe(keep);

    const seen = drifts().length;
    writeFileSync(path, `${evil}${keep}`);
    expect(await nextDrift(actionId, seen)).toMatchObject({ effect: 'removed_task', actionIds: [actionId], repaired: true, found: `the removed line is back in /etc/cron.d/${name}: ${evil.trimEnd()}` });
    expect(readFileSync(path, 'utf8')).toBe(keep);
  });

  it('a removed persistence script written back to /etc/profile.d is removed again', async () => {
    const name = `zz-${randomUUID().slice(0, 8)}.sh`;
    const path = join(etc, 'profile.d', name);
    const script = 'nohup /var/tmp/.x/miner >/dev/null 2>&1 &\n';
    mkdirSync(join(etc, 'profile.d'), { recursive: true });
    writeFileSync(path, script, { mode: 0o755 });
    const actionId = randomUUID();
    completed(await send({ type: 'remove_persistence', actionId, entity: { name, path: `/etc/profile.d/${name}` } }));
    expect(existsSync(path)).toBe(false);

    const seen = drifts().length;
    writeFileSync(path, script, { mode: 0o755 });
    expect(await nextDrift(actionId, seen)).toMatchObject({ effect: 'removed_task', actionIds: [actionId], repaired: true });
    expect(existsSync(path)).toBe(false);
  });

  it('a contained user unlocked is contained again on the word of /etc/shadow changing', async () => {
    const inSandbox = (command: string, args: string[], input?: string) => execFileSync('nsenter', ['-t', String(agent.child.pid), '-m', command, ...args], { input });
    const name = `quellev${randomUUID().slice(0, 6)}`;
    inSandbox('useradd', ['-M', '-u', String(200_000 + Math.floor(Math.random() * 100_000)), '-s', '/bin/sh', name]);
    inSandbox('chpasswd', [], `${name}:correct horse battery\n`);
    const actionId = randomUUID();
    completed(await send({ type: 'contain_user', actionId, entity: { name } }));

    const seen = drifts().length;
    inSandbox('usermod', ['-U', name]);
    expect(await nextDrift(actionId, seen)).toMatchObject({ effect: 'user_containment', actionIds: [actionId], repaired: true });
    const shadow = readFileSync(join(etc, 'shadow'), 'utf8').split('\n').find((line) => line.startsWith(`${name}:`))!.split(':');
    expect(shadow[1]).toMatch(/^!/);
  });

  it('a quarantined file dropped again at its place is removed again; after a restore it is left where it is', async () => {
    const path = join(files, `dropper-${randomUUID().slice(0, 8)}`);
    const payload = `payload ${randomUUID()}`;
    writeFileSync(path, payload, { mode: 0o755 });
    const actionId = randomUUID();
    completed(await send({ type: 'quarantine_file', actionId, entity: { name: path, path, sha256: sha256(payload) } }));
    expect(existsSync(path)).toBe(false);

    const seen = drifts().length;
    writeFileSync(path, payload, { mode: 0o755 });
    expect(await nextDrift(actionId, seen)).toMatchObject({ effect: 'quarantined_file', actionIds: [actionId], repaired: true, found: `${path} is back (the quarantined file, SHA-256 ${sha256(payload)})` });
    expect(existsSync(path)).toBe(false);

    // A different file there is not this quarantine's business.
    writeFileSync(path, 'something else');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(readFileSync(path, 'utf8')).toBe('something else');
    rmSync(path);

    completed(await send({ type: 'restore_file', entity: { name: path, path }, undoOf: actionId }));
    expect(readFileSync(path, 'utf8')).toBe(payload);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(readFileSync(path, 'utf8')).toBe(payload);
  });
});
