import { type KeyObject, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { AGENT_MAX_FRAME_BYTES, API_PATHS, AgentFrameSchema, type ServerFrame } from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import type { FastifyBaseLogger } from 'fastify';
import { type WebSocket, WebSocketServer } from 'ws';
import { AgentProtocolError, type AgentsService } from './agents.service.ts';

export interface AgentGateway {
  /** Upgrades HTTP requests to /agent/v1/connect; everything else is not ours. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Sends the open commands of these devices to those connected here. */
  dispatch(deviceIds: readonly string[]): void;
  /** Sends the latest containment state to every agent connected here. */
  publishState(): void;
  connectedDevices(): string[];
  /**
   * Drops an agent's connection: after offboarding it cannot come back; after
   * a move to another device group it comes back to its new group's state.
   */
  reconnect(deviceId: string, reason: string): void;
  close(): Promise<void>;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The kinds of frame an agent sends, for naming what is wrong with a malformed one. */
const AGENT_FRAME_KINDS = new Set(AgentFrameSchema.anyOf.map((frame) => frame.properties.t.const as string));
const PING_INTERVAL_MS = 15_000;
const HEARD_FLUSH_MS = 5_000;
const CATCH_UP_MS = 5_000;

export interface AgentGatewayDeps {
  agents: AgentsService;
  log: FastifyBaseLogger;
  /** How long a connection may stay without a valid hello before it is refused; 10 s by default. */
  handshakeTimeoutMs?: number;
  /** How often what the dispatch bus may not have said is caught up on; 5 s by default. */
  catchUpMs?: number;
}

/**
 * The agents' WebSocket endpoint. A connection is authenticated by a signed
 * challenge before anything else; afterwards the gateway pushes signed
 * commands and takes acknowledgements and signed results. Any protocol
 * violation closes that one connection and is logged; nobody else notices.
 */
export function createAgentGateway(deps: AgentGatewayDeps): AgentGateway {
  const { agents, log } = deps;
  const handshakeTimeoutMs = deps.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const wss = new WebSocketServer({ noServer: true, maxPayload: AGENT_MAX_FRAME_BYTES });
  const connections = new Map<string, { ws: WebSocket; sent: Set<string>; groupId: string | null; offboardSent?: boolean }>();
  // The latest signed state of each device group, read once per version rather than once per connecting agent.
  const states = new Map<string | null, Promise<{ version: number; jws: string } | null>>();
  const latestState = (groupId: string | null) => {
    if (!states.has(groupId)) {
      states.set(groupId, agents.currentState(groupId).catch((error: unknown) => {
        states.delete(groupId);
        throw error;
      }));
    }
    return states.get(groupId)!;
  };
  // Pongs are gathered and written in one statement every few seconds: with ten thousand agents a
  // write per pong would keep the database busy while nothing happens.
  const heard = new Set<string>();
  const flushHeard = async (): Promise<void> => {
    if (heard.size === 0) return;
    const ids = [...heard];
    heard.clear();
    await agents.touch(ids).catch((error: unknown) => log.error({ err: error }, 'recording last contact failed'));
  };
  const heardTimer = setInterval(() => void flushHeard(), HEARD_FLUSH_MS);

  /**
   * What the dispatch bus may not have said: a replica can die between
   * committing an approval and telling the others, and a replica's listening
   * connection can drop. Every few seconds, queued commands of the agents
   * connected here that they were not sent, and a newer state of their
   * groups, are sent as the bus would have.
   */
  const catchUp = async (): Promise<void> => {
    for (const { actionId, deviceId } of await agents.queuedCommands()) {
      const connection = connections.get(deviceId);
      if (connection && !connection.sent.has(actionId) && !connection.offboardSent) await pushCommands(deviceId);
    }
    for (const groupId of [...states.keys()]) {
      const current = await agents.currentState(groupId);
      // What was sent is read after: a new version published meanwhile is not taken for one the bus lost.
      const sent = await states.get(groupId)?.catch(() => null);
      if (current && sent !== undefined && current.version > (sent?.version ?? 0)) return publishState();
    }
  };
  // One pass at a time: a pass that outlasts the interval is not joined by another.
  let catchingUp: Promise<void> | null = null;
  const catchUpTimer = setInterval(() => {
    catchingUp ??= catchUp().catch((error: unknown) => log.error({ err: error }, 'catching up on dispatches failed')).finally(() => {
      catchingUp = null;
    });
  }, deps.catchUpMs ?? CATCH_UP_MS);

  const send = (ws: WebSocket, frame: ServerFrame): void => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
  };

  /** Sends a connected agent its open commands; `offboard`: whether it was asked to offboard, when already known. */
  async function pushCommands(deviceId: string, offboard?: string | null): Promise<void> {
    const connection = connections.get(deviceId);
    if (!connection) return;
    // An agent asked to offboard hears that and nothing else.
    if (offboard === undefined) offboard = await agents.offboardFrame(deviceId);
    if (offboard) {
      if (!connection.offboardSent) send(connection.ws, { t: 'offboard', jws: offboard });
      connection.offboardSent = true;
      return;
    }
    for (const command of await agents.openCommands(deviceId)) {
      if (connection.sent.has(command.actionId)) continue;
      connection.sent.add(command.actionId);
      log.debug({ deviceId, actionId: command.actionId }, 'command sent');
      send(connection.ws, { t: 'command', jws: command.jws });
    }
  }

  function publishState(): void {
    states.clear();
    const groups = new Set([...connections.values()].map((c) => c.groupId));
    void Promise.all([...groups].map(async (groupId) => [groupId, await latestState(groupId)] as const)).then((loaded) => {
      // One frame per group: the same signed bytes go to every agent of it.
      const frames = new Map(loaded.map(([groupId, current]) => [groupId, current && JSON.stringify({ t: 'state', jws: current.jws } satisfies ServerFrame)]));
      for (const { ws, groupId } of connections.values()) {
        const frame = frames.get(groupId);
        if (frame && ws.readyState === ws.OPEN) ws.send(frame);
      }
      log.info({ version: loaded[0]?.[1]?.version, agents: connections.size }, 'desired state sent');
    }).catch((error: unknown) => log.error({ err: error }, 'sending the desired state failed'));
  }

  function refuse(ws: WebSocket, reason: string, deviceId: string | null): void {
    log.warn({ deviceId, reason }, 'agent connection refused');
    send(ws, { t: 'refused', reason });
    ws.close(1008, reason.slice(0, 120));
  }

  wss.on('connection', (ws: WebSocket, request: IncomingMessage) => {
    const nonce = randomBytes(32).toString('base64url');
    let deviceId: string | null = null;
    let key: KeyObject | null = null;
    let alive = true;
    const handshakeTimer = setTimeout(() => refuse(ws, 'no hello within the handshake time', null), handshakeTimeoutMs);
    const pingTimer = setInterval(() => {
      if (!alive) return void ws.terminate();
      alive = false;
      ws.ping();
    }, PING_INTERVAL_MS);
    ws.on('pong', () => {
      alive = true;
      if (deviceId) heard.add(deviceId);
    });
    ws.on('error', (error) => log.warn({ err: error, deviceId }, 'agent socket error'));
    ws.on('close', () => {
      clearTimeout(handshakeTimer);
      clearInterval(pingTimer);
      if (deviceId && connections.get(deviceId)?.ws === ws) connections.delete(deviceId);
    });

    // Frames are handled one after another so that an ack is recorded before the result that follows it.
    let queue: Promise<void> = Promise.resolve();
    ws.on('message', (data, isBinary) => {
      queue = queue.then(() => onFrame(data as Buffer, isBinary)).catch((error: unknown) => {
        if (error instanceof AgentProtocolError) return refuse(ws, error.message, deviceId);
        log.error({ err: error, deviceId }, 'agent frame failed');
        ws.close(1011, 'server error');
      });
    });

    async function onFrame(data: Buffer, isBinary: boolean): Promise<void> {
      if (isBinary) throw new AgentProtocolError('binary frames are not part of the protocol');
      let parsed: unknown;
      try {
        parsed = JSON.parse(data.toString('utf8'));
      } catch {
        throw new AgentProtocolError('frame is not JSON');
      }
      if (typeof parsed !== 'object' || parsed === null) throw new AgentProtocolError('frame is not an object');
      const kind = String((parsed as { t?: unknown }).t).slice(0, 32);
      if (deviceId === null && kind !== 'hello') throw new AgentProtocolError('expected hello');
      const checked = checkValue(AgentFrameSchema, parsed);
      if (!checked.ok) throw new AgentProtocolError(AGENT_FRAME_KINDS.has(kind) ? `${kind} frame is malformed` : `unexpected frame ${kind}`);
      const frame = checked.value;
      if (frame.t === 'hello') {
        if (deviceId !== null) throw new AgentProtocolError('hello on a connection already authenticated');
        const proven = await agents.authenticate(frame.deviceId, nonce, frame.signature);
        if (!proven) throw new AgentProtocolError('unknown, offboarded or unproven agent');
        clearTimeout(handshakeTimer);
        deviceId = frame.deviceId;
        key = proven.key;
        connections.get(deviceId)?.ws.close(4000, 'replaced by a newer connection');
        connections.set(deviceId, { ws, sent: new Set(), groupId: proven.groupId });
        log.info({ deviceId, remote: request.socket.remoteAddress }, 'agent connected');
        send(ws, { t: 'welcome', deviceId });
        await agents.touch([deviceId]);
        if (proven.offboard) return pushCommands(deviceId, proven.offboard);
        // Desired state first, on every connection: the agent may have missed versions while away.
        const current = await latestState(proven.groupId);
        if (current) send(ws, { t: 'state', jws: current.jws });
        await pushCommands(deviceId, null);
        return;
      }
      const self = deviceId!;
      switch (frame.t) {
        case 'ack':
          return agents.acknowledge(self, frame.actionId);
        case 'result':
          // Sent once the result is recorded (or was already): until then the agent keeps its outcome to report again.
          send(ws, { t: 'result_ack', actionId: await agents.result(self, frame.jws) });
          return;
        case 'local_action': {
          const actionId = await agents.localAction(self, key!, frame.jws);
          send(ws, { t: 'local_ack', actionId });
          return;
        }
        case 'offboarded':
          await agents.offboarded(self, key!, frame.jws);
          log.info({ deviceId: self }, 'agent offboarded');
          ws.close(4001, 'offboarded');
          return;
        case 'drift':
          return agents.drift(self, key!, frame.jws);
        case 'hits':
          send(ws, { t: 'hits_ack', seq: await agents.indicatorHits(self, key!, frame.jws) });
          return;
        case 'state_applied':
          return agents.stateApplied(self, key!, frame.jws);
        case 'rejected':
          return agents.refused(self, frame.actionId, frame.reason);
        default:
          throw new AgentProtocolError(`unexpected frame ${String((frame as { t?: unknown }).t)}`);
      }
    }

    send(ws, { t: 'challenge', nonce });
  });

  return {
    handleUpgrade(request, socket, head) {
      if (new URL(request.url ?? '/', 'http://x').pathname !== API_PATHS.agentConnect) return false;
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
      return true;
    },
    dispatch(deviceIds) {
      log.debug({ deviceIds, connected: [...connections.keys()] }, 'dispatch');
      for (const deviceId of deviceIds) {
        if (connections.has(deviceId)) void pushCommands(deviceId).catch((error: unknown) => log.error({ err: error, deviceId }, 'dispatch failed'));
      }
    },
    publishState,
    connectedDevices: () => [...connections.keys()],
    reconnect(deviceId, reason) {
      connections.get(deviceId)?.ws.close(4001, reason);
    },
    async close() {
      clearInterval(heardTimer);
      clearInterval(catchUpTimer);
      await catchingUp;
      await flushHeard();
      for (const { ws } of connections.values()) ws.close(1001, 'server shutting down');
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
