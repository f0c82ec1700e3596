import { type KeyObject, createPrivateKey } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_MAX_FRAME_BYTES, API_PATHS, type AgentFrame, type CommandPayload, type Ed25519PublicJwk, type ServerFrame } from '@quell/contracts';
import { publicKeyOf } from '@quell/contracts/jws';
import WebSocket from 'ws';
import { type DialPlan, createDialPlan } from './dial-plan.ts';
import { EnrolmentRefused, deviceFacts, registerAgent } from './enrol.ts';
import { loadIdentity, saveIdentity } from './identity.ts';
import { Refusal, helloSignature, signOffboarded, signResult, signStateReport, verifyCommand, verifyOffboard, verifyState } from './protocol.ts';
import { type SimulatedAnswer, type SimulatedDevice, realisticAnswer } from './simulated-answers.ts';
import { uploadPackage } from './transport.ts';

export type { SimulatedAnswer } from './simulated-answers.ts';

export interface FleetOptions {
  /** Where the agents enrol. */
  serverUrl: string;
  /** Where they connect: the server's replicas, dialled in turn from a random start (by default `serverUrl` alone). */
  serverUrls?: string[];
  /** An enrolment token with a use for each agent the state folder does not hold yet; none is needed when it holds them all. */
  token?: string;
  agents: number;
  /**
   * Where the agents' identities (keys, device ids) are kept, one folder
   * each: started again with the same folder, the fleet comes back as the
   * same devices and enrols only the agents it lacks. Without it, the
   * identities live as long as the process.
   */
  stateDir?: string;
  /** Enrolments and connections in flight at once. */
  concurrency?: number;
  onProgress?: (phase: 'enrolling' | 'connecting', done: number, total: number) => void;
  /** Told of every verified command as it arrives, before it is acknowledged (for latency measurements). */
  onCommand?: (deviceId: string, actionId: string, at: number) => void;
  /** Told when the server says an agent's result is recorded (for latency measurements). */
  onResultRecorded?: (deviceId: string, actionId: string, at: number) => void;
  /**
   * How an agent answers each delivery of a command (tests give some agents
   * broken or hostile answers). By default it answers as the real agent
   * would: once, and from the result it kept when the command is sent again.
   * `upload` sends an investigation package, signed by the agent.
   */
  answer?: (command: CommandPayload, agent: SimulatedAgent, upload: (bytes: Buffer) => Promise<void>) => Promise<SimulatedAnswer>;
}

export interface SimulatedState { version: number; contained: string[] }

export interface SimulatedAgent {
  deviceId: string;
  hostname: string;
  /** Every command this agent carried out, in order, with when it arrived. */
  executed: Array<{ actionId: string; type: string; at: number }>;
  /** Commands that arrived again after the server had recorded their result: none, when nothing is sent twice. */
  resentAfterResult: string[];
  /** The containment state it enforces (on its fake platform). */
  state: SimulatedState | null;
  connected: boolean;
  /** The address it is connected to, or dialled last. */
  server: string;
  /** Offboarded by the server: it reported, forgot its identity and stays away. */
  offboarded: boolean;
}

export interface Fleet {
  agents: SimulatedAgent[];
  /** How many of the agents were enrolled now (the others came from the state folder). */
  enrolled: number;
  connectedCount(): number;
  close(): Promise<void>;
}

/**
 * Something that stops the simulation, said in one line an operator can
 * act on (the token is used up, the server does not know the agents).
 */
export class SimulationError extends Error {}

/** Attempts at a first connection before the fleet's start gives up on an agent. */
const CONNECT_ATTEMPTS = 5;

const hostnameOf = (i: number): string => `sim-${String(i).padStart(5, '0')}`;

type Member = SimulatedAgent & { privateKey: KeyObject; serverKey: Ed25519PublicJwk; ws: WebSocket | null; dir: string | null; plan: DialPlan; results: Map<string, Promise<string>>; recorded: Set<string> };

/**
 * N agents with real keys, real enrolment, real WebSocket connections and
 * real signatures, on a fake platform that answers every command at once
 * with what the real agent would report. For demos, load tests and
 * newcomers watching an investigation run: the server cannot tell them
 * from real agents.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const concurrency = options.concurrency ?? 50;
  const members: Array<Member | undefined> = Array.from({ length: options.agents });
  const facts = deviceFacts();
  const serverUrls = options.serverUrls?.length ? options.serverUrls : [options.serverUrl];
  const newMember = (i: number, fields: { deviceId: string; privateKey: KeyObject; serverKey: Ed25519PublicJwk; dir: string | null }): Member => {
    const plan = createDialPlan(serverUrls);
    return { ...fields, hostname: hostnameOf(i), executed: [], resentAfterResult: [], results: new Map(), recorded: new Set(), state: null, connected: false, server: plan.current(), offboarded: false, ws: null, plan };
  };
  const dirOf = (i: number): string | null => (options.stateDir ? join(options.stateDir, hostnameOf(i)) : null);

  // Agents kept from an earlier run come back as they were; only the missing ones enrol.
  const missing: number[] = [];
  for (let i = 0; i < options.agents; i++) {
    const dir = dirOf(i);
    if (!dir || !existsSync(join(dir, 'identity.json'))) {
      missing.push(i);
      continue;
    }
    const identity = loadIdentity(dir);
    if (new URL(identity.serverUrl).origin !== new URL(options.serverUrl).origin) {
      throw new SimulationError(`${options.stateDir} holds simulated agents of ${identity.serverUrl}, not of ${options.serverUrl}: choose another state folder`);
    }
    members[i] = newMember(i, { deviceId: identity.deviceId, privateKey: createPrivateKey(identity.privateKeyPem), serverKey: identity.serverKey, dir });
  }
  if (missing.length > 0 && !options.token) {
    throw new SimulationError(`${missing.length} of ${options.agents} simulated agents are not enrolled yet: give an enrolment token with ${missing.length} uses (quell token create --enrolment --uses ${missing.length})`);
  }

  let refused: EnrolmentRefused | null = null;
  let enrolledNow = 0;
  await inBatches(missing.length, concurrency, async (n) => {
    if (refused) return;
    const i = missing[n]!;
    try {
      const { enrolled, privateKey } = await registerAgent({
        serverUrl: options.serverUrl, token: options.token!, label: `enrolment ${i}`,
        facts: { ...facts, hostname: hostnameOf(i), ips: [], macs: [] },
      });
      const dir = dirOf(i);
      if (dir) {
        saveIdentity(dir, {
          serverUrl: options.serverUrl, ...(options.serverUrls ? { serverUrls } : {}), deviceId: enrolled.deviceId, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
          serverKey: enrolled.serverKey, serverKeyId: enrolled.serverKeyId,
        });
      }
      members[i] = newMember(i, { deviceId: enrolled.deviceId, privateKey, serverKey: enrolled.serverKey, dir });
      enrolledNow++;
      if (enrolledNow % 100 === 0 || enrolledNow === missing.length) options.onProgress?.('enrolling', enrolledNow, missing.length);
    } catch (error) {
      if (!(error instanceof EnrolmentRefused)) throw error;
      // The others in flight finish; no new enrolment starts.
      refused ??= error;
    }
  }, () => {});
  if (refused) {
    const { detail } = refused as EnrolmentRefused;
    const have = members.filter(Boolean).length;
    const kept = options.stateDir ? ` (kept in ${options.stateDir}: run again with a new token to enrol the rest)` : '';
    throw new SimulationError(`${detail.replace(/\.$/, '')}: ${have} of ${options.agents} simulated agents are enrolled${kept}`);
  }
  const agents = members as Member[];

  let closing = false;
  // Every agent gets the same signed bytes for one state version: verified once for the whole fleet, which
  // is what ten thousand machines verifying in parallel would cost each of them, not ten thousand times one core.
  const verifiedStates = new Map<string, ReturnType<typeof verifyState>>();
  const verifyStateOnce = (jws: string, key: Parameters<typeof verifyState>[1]) => {
    if (!verifiedStates.has(jws)) verifiedStates.set(jws, verifyState(jws, key));
    return verifiedStates.get(jws)!;
  };
  /**
   * Dials until the agent is welcomed; resolves then. A connection that
   * fails or closes before the welcome is tried again (the next address,
   * after the dial plan's wait), `attemptsLeft` times in all: once welcomed,
   * an agent keeps coming back for as long as the fleet runs.
   */
  const connect = async (agent: Member, attemptsLeft = CONNECT_ATTEMPTS): Promise<void> => {
    const key = publicKeyOf(agent.serverKey);
    agent.server = agent.plan.current();
    const url = new URL(API_PATHS.agentConnect, agent.server);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const device: SimulatedDevice = { deviceId: agent.deviceId, hostname: agent.hostname };
    const upload = (actionId: string) => (bytes: Buffer) => uploadPackage({ serverUrl: () => agent.server, deviceId: agent.deviceId, privateKey: agent.privateKey }, actionId, bytes);
    const answer = options.answer
      ? (command: CommandPayload) => options.answer!(command, agent, upload(command.actionId))
      : (command: CommandPayload) => realisticAnswer(command, device, upload(command.actionId));
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: AGENT_MAX_FRAME_BYTES, perMessageDeflate: false });
      agent.ws = ws;
      const send = (frame: AgentFrame): void => {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
      };
      let welcomed = false;
      let lastError = 'the connection closed';
      ws.on('error', (error) => {
        lastError = error.message;
      });
      ws.on('close', () => {
        agent.connected = false;
        if (closing || agent.offboarded) return resolve();
        if (!welcomed && attemptsLeft <= 1) return reject(new SimulationError(`Simulated agent ${agent.hostname} could not connect to ${agent.server} in ${CONNECT_ATTEMPTS} attempts: ${lastError}`));
        setTimeout(() => void connect(agent, welcomed ? Infinity : attemptsLeft - 1).then(resolve, reject), agent.plan.failed());
      });
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as ServerFrame;
        if (frame.t === 'challenge') return send({ t: 'hello', deviceId: agent.deviceId, signature: helloSignature(agent.privateKey, frame.nonce, agent.deviceId) });
        if (frame.t === 'welcome') {
          welcomed = true;
          agent.connected = true;
          agent.plan.welcomed();
          return resolve();
        }
        if (frame.t === 'result_ack') {
          agent.recorded.add(String(frame.actionId));
          options.onResultRecorded?.(agent.deviceId, String(frame.actionId), performance.now());
          return;
        }
        if (frame.t === 'refused' && !agent.connected) {
          agent.offboarded = true; // it will not be let in again: no reconnecting
          return reject(new SimulationError(`The server refused simulated agent ${agent.hostname} (${agent.deviceId}): ${frame.reason}. Was the server reset? Start again with an empty state folder`));
        }
        if (frame.t === 'offboard') return void offboard(agent, frame.jws, key, send);
        if (frame.t === 'state') {
          void (async () => {
            try {
              const state = await verifyStateOnce(frame.jws, key);
              if (agent.state && state.version < agent.state.version) throw new Refusal(null, `state version ${state.version} is older than ${agent.state.version}`);
              agent.state = { version: state.version, contained: state.containment.map((e) => e.address) };
              send({ t: 'state_applied', jws: signStateReport(agent.privateKey, agent.deviceId, state.version, { failures: {} }) });
            } catch (error) {
              send({ t: 'rejected', actionId: null, reason: (error as Error).message });
            }
          })();
          return;
        }
        if (frame.t !== 'command') return;
        void (async () => {
          try {
            const command = await verifyCommand(frame.jws, key, agent.deviceId, 300);
            options.onCommand?.(agent.deviceId, command.actionId, performance.now());
            if (agent.recorded.has(command.actionId)) agent.resentAfterResult.push(command.actionId);
            send({ t: 'ack', actionId: command.actionId });
            // Carried out once: sent again (after a reconnect), the command is answered with the result kept, as the real
            // agent's journal does. A test's own answer is asked again, and decides.
            if (!agent.executed.some((e) => e.actionId === command.actionId)) agent.executed.push({ actionId: command.actionId, type: command.type, at: Date.now() });
            if (!agent.results.has(command.actionId) || options.answer) {
              agent.results.set(command.actionId, answer(command).then((outcome) => signResult(agent.privateKey, agent.deviceId, command.actionId, outcome)));
            }
            send({ t: 'result', jws: await agent.results.get(command.actionId)! });
          } catch (error) {
            const refusal = error instanceof Refusal ? error : new Refusal(null, (error as Error).message);
            send({ t: 'rejected', actionId: refusal.actionId, reason: refusal.message });
          }
        })();
      });
    });
  };

  /** Offboarded by the server: reports it signed, forgets its identity (its state folder too) and stays away. */
  async function offboard(agent: Member, jws: string, key: Parameters<typeof verifyOffboard>[1], send: (frame: AgentFrame) => void): Promise<void> {
    try {
      const order = await verifyOffboard(jws, key, agent.deviceId, 300);
      const released = order.releaseEffects && agent.state?.contained.length ? [`containment of ${agent.state.contained.join(', ')}`] : [];
      agent.offboarded = true;
      send({ t: 'offboarded', jws: signOffboarded(agent.privateKey, { deviceId: agent.deviceId, released, kept: [], failures: [], vault: { files: 0, instructions: null } }) });
      if (agent.dir) rmSync(agent.dir, { recursive: true, force: true });
    } catch (error) {
      send({ t: 'rejected', actionId: null, reason: (error as Error).message });
    }
  }

  await inBatches(agents.length, concurrency, (i) => connect(agents[i]!), (done) => options.onProgress?.('connecting', done, agents.length));

  return {
    agents,
    enrolled: missing.length,
    connectedCount: () => agents.filter((a) => a.connected).length,
    async close() {
      closing = true;
      await Promise.all(agents.map((a) => new Promise<void>((resolve) => {
        if (!a.ws || a.ws.readyState === WebSocket.CLOSED) return resolve();
        a.ws.once('close', () => resolve());
        a.ws.close();
      })));
    },
  };
}

/** Runs task(0..count-1) with at most `concurrency` in flight, reporting progress. */
async function inBatches(count: number, concurrency: number, task: (i: number) => Promise<void>, progress: (done: number) => void): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      await task(i);
      done++;
      if (done % 100 === 0 || done === count) progress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
