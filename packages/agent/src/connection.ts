import type { KeyObject } from 'node:crypto';
import { AGENT_MAX_FRAME_BYTES, API_PATHS, type AgentFrame, type ServerFrame } from '@quell/contracts';
import WebSocket from 'ws';
import { createDialPlan } from './dial-plan.ts';
import { type AgentIdentity, serverUrlsOf } from './identity.ts';
import type { AgentLog } from './log.ts';
import { helloSignature } from './protocol.ts';
import { pinnedTls } from './transport.ts';

/** The frames the connection hands on: everything but its own handshake. */
export type WorkFrame = Exclude<ServerFrame, { t: 'challenge' } | { t: 'welcome' }>;

export interface Connection {
  /** Sends a frame if connected; false when it could not be sent now. */
  send(frame: AgentFrame): boolean;
  /** Sends a frame and waits until it has left, if connected. */
  sendAndWait(frame: AgentFrame): Promise<void>;
  isOpen(): boolean;
  welcomed(): boolean;
  /** The server address dialled last: where the agent is connected, when it is. */
  serverUrl(): string;
  /** Dials the server, and again after every close until close(). */
  start(): void;
  /** Resolves once connected and welcomed (again after each reconnect). */
  connected(): Promise<void>;
  close(): void;
}

/**
 * The one WebSocket the agent dials out (once started): it answers the server's challenge
 * with the agent's signature, and hands every other frame — once it is an object —
 * to `onFrame`. For as long as it is open, it reconnects after every drop or
 * failure, to the server's next address, after a jittered wait (`dial-plan.ts`).
 */
export function openConnection(deps: {
  identity: AgentIdentity;
  privateKey: KeyObject;
  log: AgentLog;
  onFrame(frame: WorkFrame): void;
  /** Each time the server has welcomed the agent: what waited for the server can be sent. */
  onWelcome(): void;
}): Connection {
  const { identity, log } = deps;
  let socket: WebSocket | null = null;
  let closed = false;
  const plan = createDialPlan(serverUrlsOf(identity));
  let reconnectTimer: NodeJS.Timeout | null = null;
  let waitingForWelcome: Array<() => void> = [];
  let welcomed = false;

  const send = (frame: AgentFrame): boolean => {
    if (socket?.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  };

  function onMessage(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      log.warn('server sent a frame that is not JSON');
      return;
    }
    // Anything can arrive on the wire (`null`, a number, an array): reading `.t` of null would throw inside
    // the socket's event handler and take the whole agent down, so whatever is not a frame is logged and dropped.
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      log.warn('server sent a frame that is not an object');
      return;
    }
    if (frame.t === 'challenge') {
      send({ t: 'hello', deviceId: identity.deviceId, signature: helloSignature(deps.privateKey, frame.nonce, identity.deviceId) });
      return;
    }
    if (frame.t === 'welcome') {
      welcomed = true;
      plan.welcomed();
      log.info('connected', { server: plan.current(), deviceId: identity.deviceId });
      waitingForWelcome.forEach((resolve) => resolve());
      waitingForWelcome = [];
      deps.onWelcome();
      return;
    }
    deps.onFrame(frame);
  }

  function connect(): void {
    const url = new URL(API_PATHS.agentConnect, plan.current());
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // ws hands TLS options to tls.connect as they are; its own type for checkServerIdentity is narrower than Node's.
    const ws = new WebSocket(url, { maxPayload: AGENT_MAX_FRAME_BYTES, handshakeTimeout: 10_000, ...(pinnedTls(identity.serverCert) as WebSocket.ClientOptions) });
    socket = ws;
    welcomed = false;
    ws.on('message', (data) => onMessage(data.toString()));
    ws.on('error', (error) => log.warn('connection error', { error: error.message }));
    ws.on('close', (code, reason) => {
      log.info('disconnected', { server: plan.current(), code, reason: reason.toString() });
      if (socket === ws) socket = null;
      if (closed) return;
      reconnectTimer = setTimeout(connect, plan.failed());
    });
  }

  return {
    start: connect,
    send,
    sendAndWait: (frame) => new Promise<void>((resolve) => {
      if (socket?.readyState !== WebSocket.OPEN) return resolve();
      socket.send(JSON.stringify(frame), () => resolve());
    }),
    isOpen: () => socket?.readyState === WebSocket.OPEN,
    welcomed: () => welcomed,
    serverUrl: () => plan.current(),
    connected: () => (welcomed ? Promise.resolve() : new Promise<void>((resolve) => waitingForWelcome.push(resolve))),
    close() {
      closed = true;
      if (reconnectTimer) clearTimeout(reconnectTimer);
      socket?.close();
    },
  };
}
