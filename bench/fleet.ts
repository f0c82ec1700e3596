/**
 * `npm run bench` (second part): the agent channel with the fleet simulator.
 * A real `quell server` (SQLite) in its own process; N simulated agents with
 * real keys, enrolment, WebSockets and signatures in this one; one real
 * agent process for its idle footprint. Writes its section of bench/RESULTS.md.
 *
 * BENCH_AGENTS (default 20000) sizes the fleet. Each agent is an open file
 * in this process and in the server's: `npm run bench` raises the limit
 * (ulimit -n 65536) where it may; where it may not, the fleet is 500 under it (the raw socket reference opens 200 more).
 */
import { replaceSection } from './report.ts';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { WebSocket, WebSocketServer } from 'ws';
import { startFleet } from '@quell/agent';
import { quellCli, startQuellServer } from '@quell/server/testing';

const WANTED_AGENTS = Number(process.env.BENCH_AGENTS ?? 20_000);
/** Each agent is an open file in this process and in the server's: a lower limit than the fleet needs sizes it, and the results say so. */
const OPEN_FILES = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
const AGENTS = Math.min(WANTED_AGENTS, OPEN_FILES - 500);
/** A p99 needs at least 2,000 samples. */
const LATENCY_SAMPLES = 2000;
/** Approvals sent at once in the latency phase, as several analysts and playbooks send them. */
const IN_FLIGHT = 10;
const DISPATCH_ACTIONS = 2000;
const RESULTS = new URL('./RESULTS.md', import.meta.url).pathname;
const PASSWORD = 'bench password, not secret';
const started = performance.now();
const log = (message: string) => process.stderr.write(`[fleet ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`);


const dataDir = mkdtempSync(join(tmpdir(), 'quell-fleet-'));
// Production's log level: every agent's connection is a line.
const env = { ...process.env, QUELL_DATA_DIR: dataDir, QUELL_PORT: '0', QUELL_ADMIN_PASSWORD: PASSWORD, QUELL_LOG_LEVEL: 'info' };
const quell = quellCli(env);

/** Resident memory and CPU time of a process, read from /proc. */
function usage(pid: number): { rssMiB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMiB: rssKiB / 1024, cpuSeconds: ticks / 100 };
}

async function idleCpuPercent(pid: number, seconds: number): Promise<number> {
  const before = usage(pid).cpuSeconds;
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  return ((usage(pid).cpuSeconds - before) / seconds) * 100;
}

/**
 * Starts measuring a phase; the returned function, called as it ends, says
 * what each figure is recorded beside: the load average then, and the
 * server's CPU time per unit of work done in it.
 */
function measuring(pid: number): (units: number, unit: string) => string {
  const before = usage(pid).cpuSeconds;
  return (units, unit) => `load ${loadavg()[0]!.toFixed(2)}; server CPU ${(((usage(pid).cpuSeconds - before) * 1000) / units).toFixed(2)} ms per ${unit}`;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

const startServer = () => startQuellServer(env);

/** Raw `ws` echo of messages of the same size over the same number of connections: the ceiling for dispatch. */
async function rawEchoPerSecond(messageBytes: number, messages: number, connections: number): Promise<number> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  server.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as { port: number }).port;
  const sockets = await Promise.all(Array.from({ length: connections }, () => new Promise<WebSocket>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.once('open', () => resolve(ws));
  })));
  const payload = 'x'.repeat(messageBytes);
  let echoed = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    for (const ws of sockets) ws.on('message', () => ++echoed === messages && resolve());
    for (let i = 0; i < messages; i++) sockets[i % connections]!.send(payload);
  });
  const perSecond = messages / ((performance.now() - t0) / 1000);
  for (const ws of sockets) ws.close();
  server.close();
  return perSecond;
}

const { child: server, url } = await startServer();
log(`server at ${url}, ${AGENTS} agents to enrol`);
try {
  const enrolment = /\n(qe_\S+)/.exec(quell('token', 'create', '--enrolment', '--name', 'bench', '--uses', String(AGENTS + 1), '--days', '1'))![1]!;
  const apiToken = /\n(qt_\S+)/.exec(quell('token', 'create', '--user', 'admin', '--name', 'bench', '--scopes', 'actions:read,actions:create,actions:decide,devices:manage,indicators:manage', '--days', '1'))![1]!;
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response.json() as Promise<{ id: string; items: Array<{ id: string }> }>;
  };

  const arrivals = new Map<string, (at: number) => void>();
  const recordings = new Map<string, (at: number) => void>();
  const t0 = performance.now();
  const enrolling = measuring(server.pid!);
  const fleet = await startFleet({
    serverUrl: url, token: enrolment, agents: AGENTS, concurrency: 100,
    onProgress: (phase, done, total) => done % 1000 === 0 && log(`${phase} ${done}/${total}`),
    onCommand: (_device, actionId, at) => arrivals.get(actionId)?.(at),
    onResultRecorded: (_device, actionId, at) => recordings.get(actionId)?.(at),
  });
  const connectSeconds = (performance.now() - t0) / 1000;
  const connected = fleet.connectedCount();
  const enrolled = enrolling(connected, 'agent enrolled and connected');
  log(`${connected} connected in ${connectSeconds.toFixed(1)} s; idling`);
  await new Promise((resolve) => setTimeout(resolve, 5000));
  const idleCpu = await idleCpuPercent(server.pid!, 20);
  const idleLoad = `load ${loadavg()[0]!.toFixed(2)}`;
  const serverRss = usage(server.pid!).rssMiB;
  log(`server RSS ${serverRss.toFixed(0)} MiB, idle CPU ${idleCpu.toFixed(1)} %`);

  // Approval → the agent holding the verified command, and → its acknowledgement and result recorded on the server
  // (the agent acknowledges and answers at once; the server handles an agent's frames in order and says
  // `result_ack` once the result is recorded, so that clock stops after the acknowledgement was recorded too).
  const delivered: number[] = [];
  const recorded: number[] = [];
  let sampled = 0;
  const approving = measuring(server.pid!);
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (sampled < LATENCY_SAMPLES) {
      const agent = fleet.agents[(sampled++ * 7919) % fleet.agents.length]!;
      const action = await api('POST', '/api/actions', { type: 'collect_investigation_package', deviceId: agent.deviceId, source: 'api', status: 'pending_approval', entity: { name: 'device' } });
      const arrived = new Promise<number>((resolve) => arrivals.set(action.id, resolve));
      const done = new Promise<number>((resolve) => recordings.set(action.id, resolve));
      const start = performance.now();
      await api('POST', '/api/actions/approve', { ids: [action.id] });
      delivered.push((await arrived) - start);
      recorded.push((await done) - start);
      arrivals.delete(action.id);
      recordings.delete(action.id);
    }
  }));
  delivered.sort((a, b) => a - b);
  recorded.sort((a, b) => a - b);
  const approved = approving(LATENCY_SAMPLES, 'action created and approved');
  log(`approval → agent p99 ${percentile(delivered, 99).toFixed(1)} ms; → ack and result recorded p50 ${percentile(recorded, 50).toFixed(1)} ms, p99 ${percentile(recorded, 99).toFixed(1)} ms`);

  // Dispatch throughput: many approvals at once, until every agent holds its command.
  const pendingIds: string[] = [];
  for (let i = 0; i < DISPATCH_ACTIONS; i++) {
    const agent = fleet.agents[i % fleet.agents.length]!;
    pendingIds.push((await api('POST', '/api/actions', { type: 'run_antivirus_scan', deviceId: agent.deviceId, source: 'api', status: 'pending_approval', entity: { name: 'device' }, parameters: { scan: 'quick' } })).id);
  }
  let received = 0;
  const allArrived = new Promise<void>((resolve) => {
    for (const id of pendingIds) arrivals.set(id, () => ++received === pendingIds.length && resolve());
  });
  const d0 = performance.now();
  const dispatching = measuring(server.pid!);
  for (let i = 0; i < pendingIds.length; i += 500) await api('POST', '/api/actions/approve', { ids: pendingIds.slice(i, i + 500) });
  await allArrived;
  const dispatchPerSecond = DISPATCH_ACTIONS / ((performance.now() - d0) / 1000);
  const dispatched = dispatching(DISPATCH_ACTIONS, 'command');
  const echoPerSecond = await rawEchoPerSecond(800, DISPATCH_ACTIONS, 100);
  log(`dispatch ${dispatchPerSecond.toFixed(0)}/s, raw ws echo ${echoPerSecond.toFixed(0)}/s`);

  // Containment fan-out: one signed state to every agent, until each applied it and the server recorded every signed report.
  const printer = await api('POST', '/api/devices', { name: 'unmanaged printer', platform: 'linux' });
  const address = '198.51.100.23';
  const f0 = performance.now();
  const containing = measuring(server.pid!);
  const contained = await api('POST', '/api/actions', { type: 'contain_device', deviceId: printer.id, source: 'api', status: 'queued', entity: { name: address } });
  let allApplied = 0;
  for (;;) {
    if (!allApplied && fleet.agents.every((a) => a.state?.contained.includes(address))) allApplied = performance.now() - f0;
    const { action } = await api('GET', `/api/actions/${contained.id}`) as unknown as { action: { status: string; result: { output?: string } | null } };
    if (action.status === 'completed' || action.status === 'failed') {
      if (action.status !== 'completed') throw new Error(`containment ${action.status}: ${JSON.stringify(action.result)}`);
      allApplied ||= performance.now() - f0;
      log(action.result?.output ?? '');
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const fanOutMs = performance.now() - f0;
  const fanOutCost = containing(fleet.agents.length, 'agent');
  log(`containment: every agent applied it after ${allApplied.toFixed(0)} ms, all reports recorded (completed) after ${fanOutMs.toFixed(0)} ms`);

  // Indicator fan-out: a block indicator created through the API, until every agent applied the state that carries it.
  const versionBefore = Math.max(...fleet.agents.map((a) => a.state?.version ?? 0));
  const i0 = performance.now();
  const fanningOut = measuring(server.pid!);
  await api('POST', '/api/indicators', { type: 'ip', value: '203.0.113.99', action: 'block', title: 'fan-out benchmark' });
  while (!fleet.agents.every((a) => (a.state?.version ?? 0) > versionBefore)) await new Promise((resolve) => setTimeout(resolve, 10));
  const indicatorFanOutMs = performance.now() - i0;
  const indicatorCost = fanningOut(fleet.agents.length, 'agent');
  log(`indicator: every agent applied it after ${indicatorFanOutMs.toFixed(0)} ms`);
  await fleet.close();

  // One real agent, idle.
  const agentDir = join(dataDir, 'agent');
  const oneToken = /\n(qe_\S+)/.exec(quell('token', 'create', '--enrolment', '--name', 'real', '--uses', '1', '--days', '1'))![1]!;
  quell('agent', 'enrol', '--server', url, '--token', oneToken, '--dir', agentDir);
  // The bundled agent that endpoints run (npm run build:agent).
  // Its antivirus watches a folder of its own (this machine's /tmp holds whatever ran before, which it would sweep), and its exec guard
  // stays off: this machine's own executions are not the benchmark's to hold (bench/indicators.ts measures the guard).
  const watched = join(dataDir, 'watched');
  mkdirSync(watched);
  const agent = spawn(process.execPath, [new URL('../packages/agent/dist/quell-agent.mjs', import.meta.url).pathname, 'run', '--dir', agentDir, `--watch=${watched}`, '--exec-guard='], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 8000));
  const agentCpu = await idleCpuPercent(agent.pid!, 20);
  const agentLoad = `load ${loadavg()[0]!.toFixed(2)}`;
  const agentRss = usage(agent.pid!).rssMiB;
  agent.kill();
  log(`real agent idle RSS ${agentRss.toFixed(0)} MiB, CPU ${agentCpu.toFixed(2)} %`);

  const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
  const section = [
    '<!-- fleet:start -->',
    '## Agent channel (fleet simulator)',
    '',
    `Produced by \`bench/fleet.ts\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; ${cpus().length} CPUs, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}.`,
    `A real \`quell server\` on SQLite in its own process; ${AGENTS.toLocaleString('en')} simulated agents (real Ed25519 keys, enrolment, WebSockets, signed commands and results) in the benchmark process on the same two cores.`,
    '',
    '| measure | target | result | beside it |',
    '|---|---|---|---|',
    `| agents enrolled and connected to one server process | 20,000 | ${connected.toLocaleString('en')} of ${AGENTS.toLocaleString('en')} in ${connectSeconds.toFixed(1)} s (${verdict(connected >= 20_000)}${AGENTS < WANTED_AGENTS ? `: this machine allows ${OPEN_FILES.toLocaleString('en')} open files per process, and \`ulimit -n\` may not raise it` : ''}) | ${enrolled} |`,
    `| **server RSS with them connected** | ≤ 600 MB | **${(serverRss * 1.048576).toFixed(0)} MB** (${verdict(serverRss * 1.048576 <= 600)}) |  |`,
    `| server CPU while idle (20 s) |  | ${idleCpu.toFixed(1)} % of one core | ${idleLoad} |`,
    `| approval → agent holds the command, p50 / p99 (${LATENCY_SAMPLES.toLocaleString('en')} samples, ${IN_FLIGHT} in flight) |  | ${percentile(delivered, 50).toFixed(1)} / ${percentile(delivered, 99).toFixed(1)} ms | ${approved} |`,
    `| approval → ack recorded on the server, p50 (${LATENCY_SAMPLES.toLocaleString('en')} samples, ${IN_FLIGHT} in flight) |  | ${percentile(recorded, 50).toFixed(1)} ms | ${approved} |`,
    `| **approval → ack recorded on the server, p99** (${LATENCY_SAMPLES.toLocaleString('en')} samples, ${IN_FLIGHT} in flight, ${connected.toLocaleString('en')} connected) | ≤ 50 ms | **${percentile(recorded, 99).toFixed(1)} ms** (${verdict(percentile(recorded, 99) <= 50)}) | ${approved} |`,
    `| dispatch throughput (${DISPATCH_ACTIONS} bulk-approved actions until every agent holds its command) |  | ${dispatchPerSecond.toFixed(0)} commands/s | ${dispatched} |`,
    `| raw \`ws\` echo of 800-byte messages over 100 connections, same process |  | ${echoPerSecond.toFixed(0)} messages/s |  |`,
    `| **dispatch ratio** |  | **${(dispatchPerSecond / echoPerSecond).toFixed(2)}** |  |`,
    `| containment fan-out: every agent applied the new state |  | ${(allApplied / 1000).toFixed(2)} s | ${fanOutCost} |`,
    `| **containment fan-out to ${AGENTS.toLocaleString('en')} agents, settled on the last signed report** (the server recorded every report; the action completed) | ≤ 3 s | **${(fanOutMs / 1000).toFixed(2)} s** (${verdict(fanOutMs <= 3000)}) | ${fanOutCost} |`,
    `| **block indicator created → applied by all ${AGENTS.toLocaleString('en')} agents** (from the API call to the last agent holding the verified state) | ≤ 5 s | **${(indicatorFanOutMs / 1000).toFixed(2)} s** (${verdict(indicatorFanOutMs <= 5000)}) | ${indicatorCost} |`,
    `| one real agent, idle RSS | ≤ 60 MB | ${(agentRss * 1.048576).toFixed(0)} MB (${verdict(agentRss * 1.048576 <= 60)}) |  |`,
    `| one real agent, idle CPU (20 s) | ≤ 0.5 % | ${agentCpu.toFixed(2)} % (${verdict(agentCpu <= 0.5)}) | ${agentLoad} |`,
    '',
    `Latency is measured from sending the approval (${IN_FLIGHT} approvals in flight at once) to the simulated agent holding the verified command, and to the agent`,
    'hearing `result_ack`: the agent acknowledges and answers at once, and the server handles one agent\'s frames in order and answers `result_ack` once the',
    'result is recorded, so that clock stops after the acknowledgement was recorded (it is an upper bound of the target\'s figure, not less).',
    'The server logs at `info`, as in production (one line per connecting agent among them), to a pipe the benchmark reads.',
    '"Beside it": the 1-minute load average as the phase ended, and the server process\'s CPU time (user and system) over the phase per unit of work;',
    'the simulated agents run on the same two cores, so the load includes them.',
    'Dispatch includes the approvals themselves (four bulk calls of 500), so it is a whole-path figure, not the socket alone.',
    'Containment fan-out runs from the API call that contains an unmanaged device: the server signs one state, sends it to every agent, and each',
    'agent verifies it, applies it (fake platform) and answers with a signed report that the server verifies and records; the simulated agents',
    'share one verification of the identical state bytes, as each real machine verifies once on its own.',
    '<!-- fleet:end -->',
  ].join('\n');
  replaceSection(RESULTS, 'fleet', section);
  process.stdout.write(section + '\n');
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
