import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemActor } from '@quell/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DIALECT, liveClock, useTestApp } from '@quell/server/testing';
import { agentLogLines, journalEntries, makeSparseFile, runsOf, sha256OfFile, slowFileBytes } from './test/channel.ts';
import { type AgentProcess, quell, spawnAgent, waitFor, waitForAction } from './test/helper.ts';

const DAY_MS = 86_400_000;
const INTERRUPTED = /The agent stopped while carrying out this action; its effect is unknown and it was not run again/;

/**
 * Faults in the command channel with a real agent process, a real server and
 * real effects: whatever breaks, no action is lost, none runs twice, and
 * each ends in a status that says what truly happened on the device.
 */
describe(`faults between the server and a real agent (${TEST_DIALECT})`, () => {
  const ctx = useTestApp({ listen: { host: '127.0.0.1' }, clock: liveClock() });
  const work = mkdtempSync(join(tmpdir(), 'quell-faults-'));
  const agentDir = join(work, 'agent');
  const finished: AgentProcess[] = [];
  let agent: AgentProcess;
  let deviceId: string;
  /** A quarantine of a sparse file this large takes a few seconds: long enough to interrupt. */
  let slowBytes: number;
  let slowHash: string;

  /** The server side of every agent connection, to cut; and a switch that makes the server unreachable. */
  const connections: Duplex[] = [];
  let unreachable = false;
  const watchConnections = (server: Server): void => {
    server.prependListener('upgrade', (_request, socket: Duplex) => {
      if (unreachable) socket.destroy();
      else connections.push(socket);
    });
  };
  const cutConnections = (): void => connections.splice(0).forEach((socket) => socket.destroy());

  const startAgentProcess = (): AgentProcess => {
    if (agent) finished.push(agent);
    agent = spawnAgent(agentDir);
    return agent;
  };
  const logLines = () => agentLogLines(agent.log());
  const connectedCount = () => logLines().filter((l) => l.msg === 'connected').length;
  const connected = (times = 1) => waitFor(`the agent to be connected (${times})`, async () => (connectedCount() >= times ? true : undefined));

  beforeAll(async () => {
    const { secret } = await ctx().services.agents.createEnrolmentToken(systemActor(), { name: 'faults', uses: 1, expiresInDays: 1 });
    const out = await quell(['agent', 'enrol', '--server', ctx().url, '--token', secret, '--dir', agentDir]);
    deviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    slowBytes = await slowFileBytes(work, 2500);
    const probe = join(work, 'slow-probe');
    makeSparseFile(probe, slowBytes);
    slowHash = await sha256OfFile(probe);
    rmSync(probe);
    watchConnections(ctx().app.server);
    startAgentProcess();
    await connected();
  });
  afterAll(async () => {
    await agent?.stop();
    if (process.env.QUELL_TEST_VERBOSE) for (const a of [...finished, agent]) process.stdout.write(a.log());
    rmSync(work, { recursive: true, force: true });
  });

  const action = async (id: string) => (await ctx().services.actions.get(systemActor(), id)).action;
  const status = (id: string, wanted: string[], timeoutMs = 15_000) => waitForAction(ctx(), id, wanted, timeoutMs);
  const eventCounts = async (id: string): Promise<Record<string, number>> => {
    const counts: Record<string, number> = {};
    for (const entry of (await ctx().services.actions.get(systemActor(), id)).timeline) counts[entry.event] = (counts[entry.event] ?? 0) + 1;
    return counts;
  };

  const newFile = (name: string, slow = false): { path: string; sha256: Promise<string> } => {
    const path = join(mkdtempSync(join(work, 'files-')), name);
    if (slow) makeSparseFile(path, slowBytes);
    else writeFileSync(path, `${name} ${Math.random()}`);
    return { path, sha256: slow ? Promise.resolve(slowHash) : sha256OfFile(path) };
  };
  async function quarantine(file: { path: string; sha256: Promise<string> }, status: 'queued' | 'pending_approval' = 'queued'): Promise<string> {
    const created = await ctx().services.actions.create(ctx().users.security_operator.actor, {
      type: 'quarantine_file', deviceId, source: status === 'queued' ? 'manual' : 'antivirus', ...(status === 'pending_approval' ? { status } : {}),
      entity: { name: file.path, path: file.path, sha256: await file.sha256 },
    });
    return created.id;
  }
  const vaulted = (id: string): boolean => existsSync(join(agentDir, 'vault', id));

  async function aNewActionWorks(): Promise<void> {
    const file = newFile('next.elf');
    const id = await quarantine(file);
    const done = await status(id, ['completed', 'failed']);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect(existsSync(file.path)).toBe(false);
    expect(runsOf(agentDir, id)).toBe(1);
  }

  it('an agent killed (SIGKILL) mid-action reports it failed as interrupted once restarted, never runs it again, and runs the next one', async () => {
    const file = newFile('big.iso', true);
    const id = await quarantine(file);
    await waitFor('the agent to start the action', async () => (runsOf(agentDir, id) === 1 ? true : undefined));
    await agent.stop('SIGKILL');
    expect(existsSync(file.path)).toBe(true);

    startAgentProcess();
    const failed = await status(id, ['completed', 'failed']);
    expect(failed.status).toBe('failed');
    expect(failed.result?.error).toMatch(INTERRUPTED);
    expect(runsOf(agentDir, id)).toBe(1);
    expect(existsSync(file.path)).toBe(true);
    expect(vaulted(id)).toBe(false);
    expect(await eventCounts(id)).toMatchObject({ deliver: 1, fail: 1 });
    expect(logLines().filter((l) => l.msg === 'action started' && l.actionId === id)).toEqual([]);
    await aNewActionWorks();
  }, 60_000);

  it('a journal line cut short by a crash does not swallow the next entry: killed again mid-action, that action is still not re-run', async () => {
    await agent.stop();
    // What a crash (power loss, a full disk) can leave at the end of the journal: half a line.
    appendFileSync(join(agentDir, 'journal.jsonl'), '{"k":"done","actionId":"0190a0a0-0000-7000-8000-0000000000');
    startAgentProcess();
    await connected();

    const file = newFile('big-again.iso', true);
    const id = await quarantine(file);
    await waitFor('the agent to start the action', async () => (logLines().some((l) => l.msg === 'action started' && l.actionId === id) ? true : undefined));
    await agent.stop('SIGKILL');

    startAgentProcess();
    const failed = await status(id, ['completed', 'failed'], 30_000);
    expect(failed.status, JSON.stringify(failed.result)).toBe('failed');
    expect(failed.result?.error).toMatch(INTERRUPTED);
    expect(runsOf(agentDir, id)).toBe(1);
    expect(existsSync(file.path)).toBe(true);
    await aNewActionWorks();
  }, 60_000);

  it('a result lost with the connection (cut right after the ack) arrives after reconnecting, from the journal, without running again', async () => {
    await connected();
    const file = newFile('cut-after-ack.iso', true);
    const id = await quarantine(file);
    await status(id, ['in_progress']);
    unreachable = true;
    cutConnections();
    try {
      await waitFor('the agent to finish while cut off', async () => (journalEntries(agentDir).some((e) => e.k === 'done' && e.actionId === id) ? true : undefined), 60_000);
      // The journal entry is written first, then the result is signed and found to have no way out: the log line follows.
      await waitFor('the agent to hold the result', async () => (logLines().some((l) => l.msg === 'result held until the server is back' && l.actionId === id) ? true : undefined));
      expect((await action(id)).status).toBe('in_progress');
    } finally {
      // The tests after this one need the server reachable, whatever happened here.
      unreachable = false;
    }
    const done = await status(id, ['completed', 'failed'], 60_000);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect(runsOf(agentDir, id)).toBe(1);
    expect(logLines().filter((l) => l.msg === 'action started' && l.actionId === id)).toHaveLength(1);
    expect(await eventCounts(id)).toMatchObject({ deliver: 1, complete: 1 });
    expect(existsSync(file.path)).toBe(false);
    expect(vaulted(id)).toBe(true);
  }, 120_000);

  it('a connection cut while the action runs, and back before it ends: the resent command is not mistaken for an interrupted one', async () => {
    await connected();
    const connects = connectedCount();
    const file = newFile('cut-while-running.iso', true);
    const id = await quarantine(file);
    await status(id, ['in_progress']);
    cutConnections();

    const done = await status(id, ['completed', 'failed'], 60_000);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    // The scenario happened as described: the agent was back, and was sent the command again, before the action ended.
    const reconnectedAt = logLines().filter((l) => l.msg === 'connected')[connects]?.time;
    const finishedAt = logLines().find((l) => l.msg === 'action finished' && l.actionId === id)?.time;
    expect(reconnectedAt).toBeLessThan(finishedAt!);
    expect(runsOf(agentDir, id)).toBe(1);
    expect(await eventCounts(id)).toMatchObject({ deliver: 1, complete: 1 });
    expect(existsSync(file.path)).toBe(false);
    expect(vaulted(id)).toBe(true);
  }, 120_000);

  it('an action for an offline device times out after its delivery window, and the late agent never runs it: its command has expired', async () => {
    await agent.stop();
    const file = newFile('late.elf');
    // Queued eight days ago: the delivery window (and the command's exp) ended a day ago.
    ctx().clock.advance(-8 * DAY_MS);
    const id = await quarantine(file);
    ctx().clock.advance(8 * DAY_MS);
    const refusals = async () => (await ctx().store.db.selectFrom('audit_log').selectAll().where('kind', '=', 'agent.command_refused').where('target_id', '=', id).execute())
      .map((row) => (JSON.parse(row.after_json!) as { reason: string }).reason);

    // Back before the timeout job ran: the server still offers the command, and the agent refuses it.
    startAgentProcess();
    expect(await waitFor('the agent to refuse the command', async () => (await refusals())[0])).toBe('command has expired');
    expect((await action(id)).status).toBe('queued');

    expect(await ctx().services.actions.timeOutUndelivered(systemActor())).toBe(1);
    const timedOut = await action(id);
    expect(timedOut.status).toBe('timed_out');
    expect(timedOut.result?.error).toMatch(/did not take the action within its delivery window/);

    // Once timed out it is no longer offered at all.
    await agent.stop();
    startAgentProcess();
    await connected();
    await aNewActionWorks();
    expect(await refusals()).toHaveLength(1);
    expect((await action(id)).status).toBe('timed_out');
    expect(runsOf(agentDir, id)).toBe(0);
    expect(existsSync(file.path)).toBe(true);
  }, 60_000);

  it('a server restarted with an approved command not yet delivered: the agent reconnects on its own and the action runs exactly once', async () => {
    await agent.stop();
    const file = newFile('approved-while-offline.elf');
    const id = await quarantine(file, 'pending_approval');
    await ctx().services.actions.approve(ctx().users.security_admin.actor, { ids: [id], comment: 'malware' });
    expect((await action(id)).status).toBe('queued');
    const serverKey = ctx().services.agents.serverKey;

    await ctx().restart(async () => {
      startAgentProcess();
      await waitFor('the agent to find the server down', async () => (logLines().some((l) => l.msg === 'connection error') ? true : undefined));
    });
    watchConnections(ctx().app.server);
    expect(ctx().services.agents.serverKey).toEqual(serverKey);

    const done = await status(id, ['completed', 'failed'], 60_000);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    expect(runsOf(agentDir, id)).toBe(1);
    expect(await eventCounts(id)).toMatchObject({ approve: 1, deliver: 1, complete: 1 });
    expect(existsSync(file.path)).toBe(false);
    expect(vaulted(id)).toBe(true);
    await aNewActionWorks();
  }, 120_000);

  const refusalsOf = async (id: string): Promise<string[]> => (await ctx().store.db.selectFrom('audit_log').selectAll().where('kind', '=', 'agent.command_refused').where('target_id', '=', id).execute())
    .map((row) => (JSON.parse(row.after_json!) as { reason: string }).reason);
  /** The server offers the action's command again, as it does when the result was lost on the way. */
  const reopen = (id: string) => ctx().store.db.updateTable('actions').set({ status: 'in_progress' }).where('id', '=', id).execute();
  const settle = (id: string) => ctx().store.db.updateTable('actions').set({ status: 'completed' }).where('id', '=', id).execute();
  const damagedLogged = () => logLines().find((l) => l.msg === 'journal entries damaged')?.damaged as Array<{ file: string; line: number; reason: string }> | undefined;

  /** Quarantines a new file and waits for the server's acknowledgement of the result in the journal; returns the file's bytes too. */
  async function quarantined(name: string, clockShiftMs = 0): Promise<{ id: string; path: string; content: Buffer }> {
    const file = newFile(name);
    const content = readFileSync(file.path);
    ctx().clock.advance(clockShiftMs);
    const id = await quarantine(file).finally(() => ctx().clock.advance(-clockShiftMs));
    const done = await status(id, ['completed', 'failed']);
    expect(done.status, JSON.stringify(done.result)).toBe('completed');
    await waitFor('the server to acknowledge the result', async () => (journalEntries(agentDir).some((e) => e.k === 'result_ack' && e.actionId === id) ? true : undefined));
    return { id, path: file.path, content };
  }

  /** Changes one digit of the checksum on this action's journal lines of these kinds; returns their line numbers. */
  function flipChecksums(actionId: string, kinds: readonly string[]): number[] {
    const file = join(agentDir, 'journal.jsonl');
    const flipped: number[] = [];
    const lines = readFileSync(file, 'utf8').split('\n').map((line, index) => {
      const json = /^[0-9a-f]{16} (\{.*\})$/.exec(line)?.[1];
      const entry = json ? (JSON.parse(json) as { k: string; actionId: string }) : null;
      if (entry?.actionId !== actionId || !kinds.includes(entry.k)) return line;
      flipped.push(index + 1);
      return (line[0] === '0' ? '1' : '0') + line.slice(1);
    });
    writeFileSync(file, lines.join('\n'));
    return flipped;
  }

  it('a journal with a `null` line: the agent starts, says which line it skipped, and carries on', async () => {
    await agent.stop();
    appendFileSync(join(agentDir, 'journal.jsonl'), 'null\n');
    const line = readFileSync(join(agentDir, 'journal.jsonl'), 'utf8').split('\n').length - 1;
    startAgentProcess();
    await connected();
    expect(damagedLogged()).toEqual([{ file: 'journal.jsonl', line, reason: 'not a journal line' }]);
    await aNewActionWorks();
  }, 60_000);

  it('a journal whose entries of a completed action fail their checksum: the server\'s redelivery of its unexpired command is refused, not run again', async () => {
    await connected();
    const { id, path, content } = await quarantined('checksum-flipped.elf');
    await agent.stop();
    const flipped = flipChecksums(id, ['start', 'done']);
    expect(flipped).toHaveLength(2);
    // The same file back in place: a second run would take it again.
    writeFileSync(path, content);
    await reopen(id);

    startAgentProcess();
    try {
      expect(await waitFor('the agent to refuse the command', async () => (await refusalsOf(id))[0]))
        .toMatch(/^this action was accepted before, but the journal has no record of it/);
      expect(damagedLogged()).toEqual(flipped.map((line) => ({ file: 'journal.jsonl', line, reason: 'checksum does not match' })));
      expect(logLines().filter((l) => l.msg === 'action started' && l.actionId === id)).toEqual([]);
      expect(existsSync(path)).toBe(true);
      // Its damaged entries were dropped at start; a second run would have written a new start.
      expect(runsOf(agentDir, id)).toBe(0);
    } finally {
      await settle(id);
    }
    await aNewActionWorks();
  }, 60_000);

  it('the journal deleted while the agent is stopped: commands it had taken are refused when offered again, an older one by its issued-at, and new ones run', async () => {
    await connected();
    // Signed 250 s in the past, then one 200 s ahead (within the clock skew the agent allows): 450 s apart.
    const older = await quarantined('before-the-loss.elf', -250_000);
    const newer = await quarantined('last-before-the-loss.elf', 200_000);
    await agent.stop();
    rmSync(join(agentDir, 'journal.jsonl'));
    for (const { path, content } of [older, newer]) writeFileSync(path, content);
    await reopen(older.id);
    await reopen(newer.id);

    startAgentProcess();
    try {
      expect(await waitFor('the agent to refuse the older command', async () => (await refusalsOf(older.id))[0])).toMatch(/^issued before the last accepted command/);
      expect(await waitFor('the agent to refuse the newer command', async () => (await refusalsOf(newer.id))[0])).toMatch(/^this action was accepted before, but the journal has no record of it/);
      for (const { id, path } of [older, newer]) {
        expect(logLines().filter((l) => l.msg === 'action started' && l.actionId === id)).toEqual([]);
        expect(existsSync(path)).toBe(true);
        expect(runsOf(agentDir, id)).toBe(0);
      }
    } finally {
      await settle(older.id);
      await settle(newer.id);
    }
    await aNewActionWorks();
  }, 60_000);
});
