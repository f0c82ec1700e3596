import type { KeyObject } from 'node:crypto';
import { AGENT_MAX_FRAME_BYTES, API_PATHS, type AgentFrame, type Ed25519PublicJwk, type ServerFrame } from '@quell/contracts';
import { importJWK } from 'jose';
import WebSocket from 'ws';
import { deviceFacts, registerAgent } from './enrol.ts';
import { Refusal, helloSignature, signResult, signStateReport, verifyCommand, verifyState } from './protocol.ts';

export interface FleetOptions {
  serverUrl: string;
  /** An enrolment token with at least `agents` uses. */
  token: string;
  agents: number;
  /** Enrolments and connections in flight at once. */
  concurrency?: number;
  onProgress?: (phase: 'enrolling' | 'connecting', done: number, total: number) => void;
  /** Told of every verified command as it arrives, before it is acknowledged (for latency measurements). */
  onCommand?: (deviceId: string, actionId: string, at: number) => void;
}

export interface SimulatedState { version: number; contained: string[] }

export interface SimulatedAgent {
  deviceId: string;
  /** Every command this agent carried out, in order, with when it arrived. */
  executed: Array<{ actionId: string; type: string; at: number }>;
  /** The containment state it enforces (on its fake platform). */
  state: SimulatedState | null;
  connected: boolean;
}

export interface Fleet {
  agents: SimulatedAgent[];
  connectedCount(): number;
  close(): Promise<void>;
}

/**
 * N agents with real keys, real enrolment, real WebSocket connections and
 * real signatures, on a fake platform that completes every command at once.
 * For demos and load tests: the server cannot tell them from real agents.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const concurrency = options.concurrency ?? 50;
  const agents: Array<SimulatedAgent & { privateKey: KeyObject; serverKey: Ed25519PublicJwk; ws: WebSocket | null }> = [];
  const facts = deviceFacts();

  await inBatches(options.agents, concurrency, async (i) => {
    const { enrolled, privateKey } = await registerAgent({
      serverUrl: options.serverUrl, token: options.token, label: `enrolment ${i}`,
      facts: { ...facts, hostname: `sim-${String(i).padStart(5, '0')}`, ips: [], macs: [] },
    });
    agents.push({ deviceId: enrolled.deviceId, executed: [], state: null, connected: false, privateKey, serverKey: enrolled.serverKey, ws: null });
  }, (done) => options.onProgress?.('enrolling', done, options.agents));

  let closing = false;
  // Every agent gets the same signed bytes for one state version: verified once for the whole fleet, which
  // is what ten thousand machines verifying in parallel would cost each of them, not ten thousand times one core.
  const verifiedStates = new Map<string, ReturnType<typeof verifyState>>();
  const verifyStateOnce = (jws: string, key: Parameters<typeof verifyState>[1]) => {
    if (!verifiedStates.has(jws)) verifiedStates.set(jws, verifyState(jws, key));
    return verifiedStates.get(jws)!;
  };
  const connect = async (agent: (typeof agents)[number]): Promise<void> => {
    const key = await importJWK(agent.serverKey, 'EdDSA');
    const url = new URL(API_PATHS.agentConnect, options.serverUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: AGENT_MAX_FRAME_BYTES, perMessageDeflate: false });
      agent.ws = ws;
      const send = (frame: AgentFrame): void => ws.send(JSON.stringify(frame));
      ws.on('error', reject);
      ws.on('close', () => {
        agent.connected = false;
        if (!closing) setTimeout(() => void connect(agent).catch(() => {}), 1000);
      });
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString()) as ServerFrame;
        if (frame.t === 'challenge') return send({ t: 'hello', deviceId: agent.deviceId, signature: helloSignature(agent.privateKey, frame.nonce, agent.deviceId) });
        if (frame.t === 'welcome') {
          agent.connected = true;
          return resolve();
        }
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
            const seen = agent.executed.some((e) => e.actionId === command.actionId);
            send({ t: 'ack', actionId: command.actionId });
            if (!seen) agent.executed.push({ actionId: command.actionId, type: command.type, at: Date.now() });
            send({ t: 'result', jws: await signResult(agent.privateKey, agent.deviceId, command.actionId, { outcome: 'completed', output: `simulated ${command.type}` }) });
          } catch (error) {
            const refusal = error instanceof Refusal ? error : new Refusal(null, (error as Error).message);
            send({ t: 'rejected', actionId: refusal.actionId, reason: refusal.message });
          }
        })();
      });
    });
  };
  await inBatches(agents.length, concurrency, (i) => connect(agents[i]!), (done) => options.onProgress?.('connecting', done, agents.length));

  return {
    agents,
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
