import { type KeyObject, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, sign as signBytes } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AGENT_PROTOCOL_VERSION, type AgentFrame, type CommandPayload, type Ed25519PublicJwk, type ResultPayload, type ServerFrame } from '@quell/contracts';
import type { WebSocket} from 'ws';
import { WebSocketServer } from 'ws';
import { saveIdentity } from '../identity.ts';

/** What the agent answered to one command: its signed result, or its refusal. */
export type Answer = { t: 'result'; result: ResultPayload } | { t: 'rejected'; reason: string };

/**
 * A server that signs whatever a test asks — what a compromised or buggy
 * server could send — and talks to a real agent over a real WebSocket.
 * The agent's identity is written for it, pinned to this server's key, so
 * everything inside a command is the test's to choose: ids, types,
 * entities, parameters.
 */
export interface HostileServer {
  url: string;
  /** Writes an enrolled identity for an agent of this server into `dir`. */
  enrol(dir: string): { deviceId: string };
  connected(): Promise<void>;
  /** Signs and sends a command; resolves with the agent's answer to it. */
  send(command: Partial<CommandPayload> & Pick<CommandPayload, 'type' | 'entity'>): Promise<Answer>;
  /** The answer to an action sent earlier (once the agent reports it, e.g. after a restart). */
  answerTo(actionId: string): Promise<Answer>;
  /** Every frame the agent sent, in order. */
  frames: AgentFrame[];
  close(): Promise<void>;
}

export async function startHostileServer(): Promise<HostileServer> {
  const key: KeyObject = generateKeyPairSync('ed25519').privateKey;
  const frames: AgentFrame[] = [];
  const waiters = new Map<string, Array<(answer: Answer) => void>>();
  const answers = new Map<string, Answer>();
  let socket: WebSocket | null = null;
  let onConnected: Array<() => void> = [];
  let deviceId = '';

  const settle = (actionId: string, answer: Answer): void => {
    answers.set(actionId, answer);
    for (const resolve of waiters.get(actionId) ?? []) resolve(answer);
    waiters.delete(actionId);
  };
  const reply = (ws: WebSocket, frame: ServerFrame | { t: string; [k: string]: unknown }): void => ws.send(JSON.stringify(frame));
  const sign = (payload: object): string => {
    const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'quell-command+jws' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${input}.${signBytes(null, Buffer.from(input), key).toString('base64url')}`;
  };
  const payloadOf = (jws: string): ResultPayload => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as ResultPayload;

  const http: Server = createServer((_request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => {
    socket = ws;
    reply(ws, { t: 'challenge', nonce: randomBytes(32).toString('base64url') });
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as AgentFrame;
      frames.push(frame);
      if (frame.t === 'hello') {
        reply(ws, { t: 'welcome', deviceId });
        onConnected.forEach((resolve) => resolve());
        onConnected = [];
      } else if (frame.t === 'result') {
        const result = payloadOf(frame.jws);
        reply(ws, { t: 'result_ack', actionId: result.actionId });
        settle(result.actionId, { t: 'result', result });
      } else if (frame.t === 'rejected' && frame.actionId) {
        settle(frame.actionId, { t: 'rejected', reason: frame.reason });
      }
    });
    ws.on('close', () => {
      if (socket === ws) socket = null;
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const answerTo = (actionId: string): Promise<Answer> => {
    const known = answers.get(actionId);
    if (known) return Promise.resolve(known);
    return new Promise((resolve) => waiters.set(actionId, [...(waiters.get(actionId) ?? []), resolve]));
  };

  return {
    url,
    frames,
    enrol(dir) {
      deviceId = randomUUID();
      const agentKey = generateKeyPairSync('ed25519').privateKey;
      saveIdentity(dir, {
        serverUrl: url, deviceId, privateKeyPem: agentKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
        serverKey: createPublicKey(key).export({ format: 'jwk' }) as Ed25519PublicJwk, serverKeyId: 'hostile',
      });
      return { deviceId };
    },
    connected: () => (socket ? Promise.resolve() : new Promise<void>((resolve) => onConnected.push(resolve))),
    async send(command) {
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        v: AGENT_PROTOCOL_VERSION, actionId: randomUUID(), deviceId, parameters: {}, undoOf: null, iat: now, exp: now + 3600,
        nonce: randomBytes(16).toString('base64url'), ...command,
      };
      if (!socket) throw new Error('the agent is not connected');
      const answer = answerTo(String(payload.actionId));
      reply(socket, { t: 'command', jws: sign(payload) });
      return answer;
    },
    answerTo,
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
