import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD, type TestDatabase, createTestDatabase, quellCli, startQuellServer } from '@quell/server/testing';
import { type Fleet, startFleet } from './simulator.ts';
import { agentLogLines, runsOf } from './test/channel.ts';
import { type AgentProcess, quell, spawnAgent, waitFor } from './test/helper.ts';

const SIMULATED_AGENTS = 30;
/** Each simulated agent is given this many actions in the kill test. */
const ACTIONS_EACH = 2;
const IN_FLIGHT = 10;

/**
 * Three `quell server` processes on one PostgreSQL database, agents spread
 * across them: the simulated fleet, and one real agent process that knows
 * the three addresses. An approval on any replica reaches an agent on
 * another; a replica killed with SIGKILL loses none of its agents for long,
 * and no approved action is lost or carried out twice.
 */
describe('three server replicas on one PostgreSQL (postgres)', () => {
  const work = mkdtempSync(join(tmpdir(), 'quell-replicas-'));
  const agentDir = join(work, 'agent');
  let db: TestDatabase;
  const replicas: Array<{ child: ChildProcess; url: string }> = [];
  let urls: string[] = [];
  let apiToken = '';
  let fleet: Fleet;
  let agent: AgentProcess;
  let realDeviceId = '';

  beforeAll(async () => {
    db = await createTestDatabase();
    // Replicas share the database and the data folder's command-signing key.
    const env = { ...process.env, ...db.env, QUELL_DATA_DIR: join(work, 'data'), QUELL_HOST: '127.0.0.1', QUELL_PORT: '0', QUELL_ADMIN_PASSWORD: PASSWORD, QUELL_LOG_LEVEL: 'warn' };
    replicas.push(await startQuellServer(env));
    replicas.push(...await Promise.all([startQuellServer(env), startQuellServer(env)]));
    urls = replicas.map((r) => r.url);
    const cli = quellCli(env);
    const enrolment = /\n(qe_\S+)/.exec(cli('token', 'create', '--enrolment', '--name', 'replicas', '--uses', String(SIMULATED_AGENTS + 1), '--days', '1'))![1]!;
    apiToken = /\n(qt_\S+)/.exec(cli('token', 'create', '--user', 'admin', '--name', 'replicas', '--scopes', 'actions:read,actions:create,actions:decide', '--days', '1'))![1]!;
    fleet = await startFleet({ serverUrl: urls[0]!, serverUrls: urls, token: enrolment, agents: SIMULATED_AGENTS });
    const out = await quell(['agent', 'enrol', '--server', urls.join(','), '--token', enrolment, '--dir', agentDir]);
    realDeviceId = /Enrolled as device ([0-9a-f-]{36})/.exec(out)![1]!;
    agent = spawnAgent(agentDir);
    await waitFor('the real agent to connect', async () => (realAgentServer() ? true : undefined));
  }, 180_000);

  afterAll(async () => {
    await fleet?.close();
    await agent?.stop();
    for (const { child } of replicas) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  });

  /** The replica the real agent said it connected to last. */
  const realAgentServer = (): string | undefined => agentLogLines(agent.log()).filter((l) => l.msg === 'connected').at(-1)?.server as string | undefined;

  async function api<T>(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: await response.json() as T };
  }
  const createAction = async (url: string, body: object): Promise<string> => {
    const created = await api<{ id: string }>(url, 'POST', '/api/actions', { source: 'api', status: 'pending_approval', ...body });
    expect(created.status).toBe(201);
    return created.body.id;
  };
  /** The status an action settles in, with what its result says when it is not completed. */
  const settled = (url: string, id: string) => waitFor(`action ${id} to settle`, async () => {
    const { action } = (await api<{ action: { type: string; status: string; result: unknown } }>(url, 'GET', `/api/actions/${id}`)).body;
    if (action.status === 'completed') return action.status;
    return ['failed', 'timed_out', 'expired'].includes(action.status) ? `${action.type} ${action.status}: ${JSON.stringify(action.result)}` : undefined;
  }, 30_000);

  it('spreads the agents across the replicas, and an approval on any replica reaches an agent on another', async () => {
    for (const url of urls) expect(fleet.agents.filter((a) => a.server === url).length).toBeGreaterThan(0);
    for (const [i, url] of urls.entries()) {
      const elsewhere = fleet.agents.find((a) => a.connected && a.server === urls[(i + 1) % urls.length])!;
      const id = await createAction(url, { type: 'run_antivirus_scan', deviceId: elsewhere.deviceId, entity: { name: 'device' }, parameters: { scan: 'quick' } });
      expect((await api(url, 'POST', '/api/actions/approve', { ids: [id] })).status).toBe(200);
      expect(await settled(url, id)).toBe('completed');
      expect(elsewhere.executed.filter((e) => e.actionId === id)).toHaveLength(1);
    }
  });

  it('when a replica is killed, its agents are back on the others within 15 s, and every approved action is carried out exactly once', async () => {
    const victimUrl = realAgentServer()!;
    const victim = replicas.find((r) => r.url === victimUrl)!;
    const survivors = urls.filter((url) => url !== victimUrl);
    const orphans = fleet.agents.filter((a) => a.server === victimUrl).length;

    // A file for the real agent to quarantine: a real effect, recorded in its journal.
    const file = join(work, 'dropper.bin');
    writeFileSync(file, 'not really malware, but hashed like it\n');
    const sha256 = createHash('sha256').update('not really malware, but hashed like it\n').digest('hex');
    const quarantineId = await createAction(survivors[0]!, { type: 'quarantine_file', deviceId: realDeviceId, entity: { name: file, path: file, sha256 } });
    const ids = [quarantineId];
    for (const simulated of fleet.agents) {
      for (let n = 0; n < ACTIONS_EACH; n++) ids.push(await createAction(survivors[0]!, { type: 'collect_investigation_package', deviceId: simulated.deviceId, entity: { name: `device ${n}` } }));
    }

    // Approvals one by one, ten in flight, on each replica in turn, as a client behind a load balancer sends them;
    // one that cannot reach its replica is sent to the next. Part-way, the replica of the real agent is killed.
    let next = 0;
    let approvedCount = 0;
    let killedAt = 0;
    const approveOne = async (id: string, turn: number): Promise<void> => {
      for (let attempt = 0; ; attempt++) {
        const url = urls[(turn + attempt) % urls.length]!;
        try {
          const { status } = await api(url, 'POST', '/api/actions/approve', { ids: [id] });
          // 409: an earlier attempt went through before its replica died.
          if (status === 200 || status === 409) return;
          throw new Error(`approving ${id} on ${url}: ${status}`);
        } catch (error) {
          if (!(error instanceof TypeError) || attempt > urls.length) throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ids.length) {
        const turn = next++;
        await approveOne(ids[turn]!, turn);
        if (++approvedCount === Math.floor(ids.length / 3)) {
          victim.child.kill('SIGKILL');
          killedAt = Date.now();
        }
      }
    }));
    expect(killedAt).toBeGreaterThan(0);

    await waitFor('every agent to be connected to a surviving replica', async () => {
      const simulatedBack = fleet.agents.every((a) => a.connected && survivors.includes(a.server));
      return simulatedBack && survivors.includes(realAgentServer()!) ? true : undefined;
    }, 15_000 - (Date.now() - killedAt));
    expect(orphans).toBeGreaterThan(0);

    for (const id of ids) expect(await settled(survivors[0]!, id)).toBe('completed');
    // Exactly once: each simulated agent carried out its own actions, each one time, and none was sent again after its result was recorded.
    const executed = fleet.agents.flatMap((a) => a.executed.map((e) => e.actionId));
    expect(executed.filter((id) => ids.includes(id)).sort()).toEqual(ids.slice(1).sort());
    for (const simulated of fleet.agents) expect(simulated.resentAfterResult).toEqual([]);
    // The real agent ran its quarantine once, and the file is in its vault.
    expect(runsOf(agentDir, quarantineId)).toBe(1);
    expect(existsSync(file)).toBe(false);
    expect(existsSync(join(agentDir, 'vault', quarantineId))).toBe(true);
  }, 120_000);
});
