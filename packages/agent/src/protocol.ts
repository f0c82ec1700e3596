import { type KeyObject, sign as signBytes } from 'node:crypto';
import { AGENT_PROTOCOL_VERSION, type CommandPayload, type ResultPayload, challengeMessage } from '@quell/contracts';
import { CompactSign, compactVerify } from 'jose';

/** A command the agent will not run, with the reason it reports to the server. */
export class Refusal extends Error {
  constructor(readonly actionId: string | null, reason: string) {
    super(reason);
  }
}

/** The agent's answer to the server's connection challenge. */
export function helloSignature(privateKey: KeyObject, nonce: string, deviceId: string): string {
  return signBytes(null, Buffer.from(challengeMessage(nonce, deviceId)), privateKey).toString('base64url');
}

/**
 * Checks everything about a command before anything runs: the pinned server
 * key's signature, the protocol version, this device, the expiry, the
 * issued-at (within the allowed skew) and the presence of a nonce.
 */
export async function verifyCommand(jws: string, serverKey: Parameters<typeof compactVerify>[1], deviceId: string, maxSkewSeconds: number): Promise<CommandPayload> {
  let payload: CommandPayload;
  try {
    const verified = await compactVerify(jws, serverKey, { algorithms: ['EdDSA'] });
    payload = JSON.parse(new TextDecoder().decode(verified.payload)) as CommandPayload;
  } catch (error) {
    throw new Refusal(null, `command signature does not verify against the pinned server key: ${(error as Error).message}`);
  }
  const actionId = typeof payload.actionId === 'string' ? payload.actionId : null;
  const now = Math.floor(Date.now() / 1000);
  if (payload.v !== AGENT_PROTOCOL_VERSION) throw new Refusal(actionId, `unknown protocol version ${String(payload.v)}`);
  if (payload.deviceId !== deviceId) throw new Refusal(actionId, 'command is addressed to another device');
  if (typeof payload.exp !== 'number' || payload.exp <= now) throw new Refusal(actionId, 'command has expired');
  if (typeof payload.iat !== 'number' || payload.iat > now + maxSkewSeconds) throw new Refusal(actionId, 'command is issued in the future');
  if (typeof payload.nonce !== 'string' || payload.nonce.length < 16) throw new Refusal(actionId, 'command has no nonce');
  return payload;
}

/** A result signed with the agent's key, which the server checks against the key it enrolled. */
export async function signResult(privateKey: KeyObject, deviceId: string, actionId: string, result: { outcome: 'completed' | 'failed'; output?: string; error?: string }): Promise<string> {
  const payload: ResultPayload = {
    v: AGENT_PROTOCOL_VERSION, actionId, deviceId, outcome: result.outcome, iat: Math.floor(Date.now() / 1000),
    ...(result.output !== undefined ? { output: result.output } : {}), ...(result.error !== undefined ? { error: result.error } : {}),
  };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'EdDSA', typ: 'quell-result+jws' }).sign(privateKey);
}
