/**
 * `npm run bench` (last part): three `quell server` replicas on one
 * PostgreSQL database, a simulated fleet spread across them. Measures an
 * approval on one replica reaching an agent connected to another; then
 * kills one replica with SIGKILL in the middle of approvals, measures how
 * long its agents take to be back on the others, and checks that every
 * approved action completed, each carried out once. Writes its section of
 * bench/RESULTS.md.
 *
 * BENCH_REPLICA_AGENTS (default 6000) sizes the fleet.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startFleet } from '@quell/agent';
import { quellCli, startQuellServer } from '@quell/server/testing';
import { createBenchDatabase } from './database.ts';
import { cpuMsOf, stats } from './http.ts';
import { replaceSection } from './report.ts';
import { createTeardown } from './teardown.ts';

const AGENTS = Number(process.env.BENCH_REPLICA_AGENTS ?? 6000);
const REPLICAS = 3;
/** A p99 needs at least 2,000 samples. */
const SAMPLES = 2000;
const IN_FLIGHT = 10;
/** Actions approved across the kill: a third before it, the rest after. */
const KILL_ACTIONS = 600;
const TARGETS = { crossReplicaP99Ms: 100, backWithinMs: 15_000 } as const;
const RESULTS = new URL('./RESULTS.md', import.meta.url).pathname;
const PASSWORD = 'bench password, not secret';

const started = performance.now();
const log = (message: string) => process.stderr.write(`[replicas ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);
const { owe, runToEnd } = createTeardown(log, 20 * 60_000);
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

await runToEnd(async () => {
  const database = await createBenchDatabase('postgres');
  owe(() => database.drop());
  const dataDir = mkdtempSync(join(tmpdir(), 'quell-replicas-'));
  owe(async () => rmSync(dataDir, { recursive: true, force: true }));
  if (database.location.dialect !== 'postgres') throw new Error('replicas need PostgreSQL');
  // Production's log level; the replicas share the database and the data folder (its command-signing key).
  const env = { ...process.env, QUELL_DATABASE_URL: database.location.url, QUELL_DATA_DIR: dataDir, QUELL_PORT: '0', QUELL_ADMIN_PASSWORD: PASSWORD, QUELL_LOG_LEVEL: 'info' };
  const replicas: Array<{ child: ChildProcess; url: string }> = [];
  const start = async () => {
    const replica = await startQuellServer(env);
    owe(async () => {
      if (replica.child.exitCode !== null || replica.child.signalCode !== null) return;
      replica.child.kill('SIGTERM');
      await new Promise((resolve) => replica.child.once('exit', resolve));
    });
    return replica;
  };
  replicas.push(await start());
  replicas.push(...await Promise.all(Array.from({ length: REPLICAS - 1 }, start)));
  const urls = replicas.map((r) => r.url);
  const cpuOfReplicas = (alive = replicas) => alive.reduce((sum, r) => sum + cpuMsOf(r.child.pid!), 0);
  log(`${REPLICAS} replicas at ${urls.join(', ')}; ${AGENTS} agents to enrol`);

  const quell = quellCli(env);
  const enrolment = /\n(qe_\S+)/.exec(quell('token', 'create', '--enrolment', '--name', 'bench', '--uses', String(AGENTS), '--days', '1'))![1]!;
  const apiToken = /\n(qt_\S+)/.exec(quell('token', 'create', '--user', 'admin', '--name', 'bench', '--scopes', 'actions:read,actions:create,actions:decide', '--days', '1'))![1]!;
  const api = async <T>(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: await response.json() as T };
  };
  const create = async (url: string, deviceId: string): Promise<string> => {
    const created = await api<{ id: string }>(url, 'POST', '/api/actions', { type: 'run_antivirus_scan', deviceId, source: 'api', status: 'pending_approval', entity: { name: 'device' }, parameters: { scan: 'quick' } });
    if (created.status !== 201) throw new Error(`creating an action: ${created.status} ${JSON.stringify(created.body)}`);
    return created.body.id;
  };

  const arrivals = new Map<string, (at: number) => void>();
  const fleet = await startFleet({
    serverUrl: urls[0]!, serverUrls: urls, token: enrolment, agents: AGENTS, concurrency: 100,
    onProgress: (phase, done, total) => done % 1000 === 0 && log(`${phase} ${done}/${total}`),
    onCommand: (_device, actionId, at) => arrivals.get(actionId)?.(at),
  });
  owe(() => fleet.close());
  const spread = urls.map((url) => fleet.agents.filter((a) => a.server === url).length);
  log(`connected: ${spread.join(' / ')}`);

  // An approval on one replica → the agent, connected to another, holding the verified command.
  const latencies: number[] = [];
  let sampled = 0;
  const cpuBefore = cpuOfReplicas();
  const loadBefore = loadavg()[0]!;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (sampled < SAMPLES) {
      const i = sampled++;
      const agent = fleet.agents[(i * 7919) % fleet.agents.length]!;
      const elsewhere = urls[(urls.indexOf(agent.server) + 1 + (i % (REPLICAS - 1))) % REPLICAS]!;
      const id = await create(elsewhere, agent.deviceId);
      const arrived = new Promise<number>((resolve) => arrivals.set(id, resolve));
      const t0 = performance.now();
      const approved = await api(elsewhere, 'POST', '/api/actions/approve', { ids: [id] });
      if (approved.status !== 200) throw new Error(`approving: ${approved.status} ${JSON.stringify(approved.body)}`);
      latencies.push((await arrived) - t0);
      arrivals.delete(id);
    }
  }));
  const cross = stats(latencies);
  const crossCpu = (cpuOfReplicas() - cpuBefore) / SAMPLES;
  const crossLoad = `load ${loadBefore.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}; replicas' CPU ${crossCpu.toFixed(2)} ms per action created and approved`;
  log(`cross-replica approval → agent: p50 ${cross.p50.toFixed(1)} ms, p99 ${cross.p99.toFixed(1)} ms`);

  // A replica killed with SIGKILL while approvals flow, each sent to the replicas in turn and, when its replica
  // cannot be reached, to the next (as a client behind a load balancer would be).
  const victim = replicas[0]!;
  const survivors = replicas.slice(1);
  const orphans = fleet.agents.filter((a) => a.server === victim.url).length;
  const ids: string[] = [];
  for (let i = 0; i < KILL_ACTIONS; i++) ids.push(await create(survivors[i % survivors.length]!.url, fleet.agents[(i * 104_729) % fleet.agents.length]!.deviceId));
  let next = 0;
  let killedAt = 0;
  const approveOne = async (id: string, turn: number): Promise<void> => {
    for (let attempt = 0; attempt <= REPLICAS; attempt++) {
      try {
        const { status } = await api(urls[(turn + attempt) % REPLICAS]!, 'POST', '/api/actions/approve', { ids: [id] });
        if (status === 200 || status === 409) return; // 409: an attempt went through before its replica died
        throw new Error(`approving ${id}: ${status}`);
      } catch (error) {
        if (!(error instanceof TypeError)) throw error;
      }
    }
    throw new Error(`no replica took the approval of ${id}`);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < ids.length) {
      const turn = next++;
      if (turn === KILL_ACTIONS / 3 && !killedAt) {
        victim.child.kill('SIGKILL');
        killedAt = performance.now();
        log(`killed the replica at ${victim.url}, which held ${orphans} agents`);
      }
      await approveOne(ids[turn]!, turn);
    }
  }));
  let backMs = Number.NaN;
  for (const deadline = killedAt + 120_000; performance.now() < deadline; await sleep(20)) {
    if (fleet.agents.every((a) => a.connected && a.server !== victim.url)) {
      backMs = performance.now() - killedAt;
      break;
    }
  }
  log(`its agents were back on the others after ${backMs.toFixed(0)} ms`);

  // Every approved action settles, completed; none is sent to its agent again once its result is recorded. (A command sent
  // again before that, after a reconnect, is answered from what the agent kept, as the real agent's journal does.)
  const statuses = new Map<string, string>();
  for (const deadline = performance.now() + 120_000; statuses.size < ids.length && performance.now() < deadline; await sleep(200)) {
    for (const id of ids.filter((i) => !statuses.has(i))) {
      const { body } = await api<{ action: { status: string } }>(survivors[0]!.url, 'GET', `/api/actions/${id}`);
      if (['completed', 'failed', 'timed_out', 'expired'].includes(body.action.status)) statuses.set(id, body.action.status);
    }
  }
  const completed = [...statuses.values()].filter((s) => s === 'completed').length;
  const lost = ids.length - completed;
  const resent = fleet.agents.reduce((sum, a) => sum + a.resentAfterResult.length, 0);
  log(`${completed} of ${ids.length} completed; ${resent} sent again after their result`);
  const intact = lost === 0 && resent === 0;

  const section = [
    '<!-- replicas:start -->',
    '## Three replicas on one PostgreSQL',
    '',
    `Produced by \`bench/replicas.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}.`,
    `${REPLICAS} \`quell server\` processes on one PostgreSQL database, logging at \`info\`; ${AGENTS.toLocaleString('en')} simulated agents (real keys, enrolment, WebSockets and signatures) given the three addresses,`,
    `spread across them as they chose (${spread.join(' / ')}), in the benchmark process on the same two cores.`,
    '',
    '| measure | target | result | beside it |',
    '|---|---|---|---|',
    `| approval on one replica → agent connected to another holds the command, p50 (${cross.requests.toLocaleString('en')} samples, ${IN_FLIGHT} in flight) |  | ${cross.p50.toFixed(1)} ms | ${crossLoad} |`,
    `| **approval on one replica → agent connected to another holds the command, p99** (${cross.requests.toLocaleString('en')} samples) | ≤ ${TARGETS.crossReplicaP99Ms} ms | **${cross.p99.toFixed(1)} ms** (${verdict(cross.p99 <= TARGETS.crossReplicaP99Ms)}) | ${crossLoad} |`,
    `| **one replica killed (SIGKILL): its ${orphans.toLocaleString('en')} agents back on the others** | ≤ 15 s | **${(backMs / 1000).toFixed(2)} s** (${verdict(backMs <= TARGETS.backWithinMs)}) | load ${loadavg()[0]!.toFixed(2)} |`,
    `| **${ids.length} actions approved across the kill (${KILL_ACTIONS / 3} before it)**: completed / not completed / sent to their agent again after the result was recorded | all, none, none | **${completed} / ${lost} / ${resent}** (${verdict(intact)}) |  |`,
    '',
    'The latency runs from sending the approval to a replica other than the agent\'s until the agent holds the verified command: the approving replica',
    'commits and says so on `LISTEN`/`NOTIFY`; the agent\'s replica hears it, reads the command and sends it. Approvals during the kill go to the replicas',
    'in turn; one whose replica cannot be reached is sent to the next, as behind a load balancer. Agents dial their addresses in turn after a drop, after',
    'a random wait under one second (`packages/agent/src/dial-plan.ts`); "back" is the moment the last of them was welcomed by a surviving replica.',
    '<!-- replicas:end -->',
  ].join('\n');
  replaceSection(RESULTS, 'replicas', section);
  process.stdout.write(`${section}\n`);
  if (!intact) throw new Error('an approved action was lost or carried out twice');
});
