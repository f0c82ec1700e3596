import type { KeyObject } from 'node:crypto';
import {
  AGENT_PROTOCOL_VERSION, type CommandPayload, CommandPayloadSchema, type DriftPayload, type IndicatorHit, type IndicatorHitsPayload, type LocalActionPayload, type OffboardPayload,
  OffboardPayloadSchema, type OffboardedPayload, type ResultPayload, type StatePayload, StatePayloadSchema, type StateReportPayload, UUID, addressOrRange, canonicalParameters,
  challengeMessage, parameterProblem, upgradeParameters,
} from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import { signJws, signMessage, verifyJws } from '@quell/contracts/jws';

/** A command the agent will not run, with the reason it reports to the server. */
export class Refusal extends Error {
  constructor(readonly actionId: string | null, reason: string) {
    super(reason);
  }
}

/** The agent's answer to the server's connection challenge. */
export function helloSignature(privateKey: KeyObject, nonce: string, deviceId: string): string {
  return signMessage(privateKey, challengeMessage(nonce, deviceId));
}

/**
 * Checks everything about a command before anything runs: the pinned server
 * key's signature, the protocol version, this device, the expiry, the
 * issued-at (within the allowed skew), then its shape and its parameters
 * against its type's (the schemas in the contracts).
 */
export function verifyCommand(jws: string, serverKey: KeyObject, deviceId: string, maxSkewSeconds: number): CommandPayload {
  const payload = signedByServer<CommandPayload>(jws, serverKey, 'command');
  const actionId = typeof payload.actionId === 'string' && UUID.test(payload.actionId) ? payload.actionId : null;
  const now = Math.floor(Date.now() / 1000);
  if (payload.v !== AGENT_PROTOCOL_VERSION) throw new Refusal(actionId, `unknown protocol version ${String(payload.v)}`);
  if (payload.deviceId !== deviceId) throw new Refusal(actionId, 'command is addressed to another device');
  if (typeof payload.exp !== 'number' || payload.exp <= now) throw new Refusal(actionId, 'command has expired');
  if (typeof payload.iat !== 'number' || payload.iat > now + maxSkewSeconds) throw new Refusal(actionId, 'command is issued in the future');
  // A server older than typed parameters signs lists as strings: read them as today's lists before judging them.
  const command = { ...payload, parameters: upgradeParameters(payload.parameters) } as CommandPayload;
  const malformed = commandShapeProblem(command);
  if (malformed) throw new Refusal(actionId, `command is malformed: ${malformed}`);
  return { ...command, parameters: canonicalParameters(command.parameters) };
}

/** What is wrong with a signed command's content, or null: its shape, then every parameter against its type's rule. */
export function commandShapeProblem(payload: CommandPayload): string | null {
  const checked = checkValue(CommandPayloadSchema, payload);
  if (!checked.ok) return checked.problem;
  return parameterProblem(payload.type, payload.parameters);
}

/** The payload of a JWS the pinned server key signed, as an object; refused with `what` named otherwise. */
function signedByServer<T>(jws: string, serverKey: KeyObject, what: string): T {
  const verified = verifyJws(jws, serverKey);
  if ('problem' in verified) throw new Refusal(null, `${what} signature does not verify against the pinned server key: ${verified.problem}`);
  const { payload } = verified;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new Refusal(null, `${what} payload is not an object`);
  return payload as T;
}

/** A result signed with the agent's key, which the server checks against the key it enrolled. */
export function signResult(privateKey: KeyObject, deviceId: string, actionId: string, result: { outcome: 'completed' | 'failed'; output?: string; error?: string }): string {
  const payload: ResultPayload = {
    v: AGENT_PROTOCOL_VERSION, actionId, deviceId, outcome: result.outcome, iat: Math.floor(Date.now() / 1000),
    ...(result.output !== undefined ? { output: result.output } : {}), ...(result.error !== undefined ? { error: result.error } : {}),
  };
  return signJws(privateKey, { typ: 'quell-result+jws' }, payload);
}

/** Checks a desired-state frame: the pinned server key's signature, the protocol version and each of its lists against its schema. */
export function verifyState(jws: string, serverKey: KeyObject): StatePayload {
  const payload = signedByServer<StatePayload>(jws, serverKey, 'state');
  if (payload.v !== AGENT_PROTOCOL_VERSION || payload.kind !== 'quell-state') throw new Refusal(null, 'not a desired-state payload of this protocol version');
  const whole = checkValue(StatePayloadSchema, payload);
  const { network } = payload;
  const addresses = whole.ok && network !== undefined ? [...network.blockAddresses ?? [], ...network.allowAddresses ?? [], ...network.auditAddresses ?? []] : [];
  if (whole.ok && !addresses.some((a) => 'problem' in addressOrRange(a))) return payload;
  // Something is wrong: the refusal names the part, for the agent's report.
  const part = StatePayloadSchema.properties;
  const fits = (schema: Parameters<typeof checkValue>[0], value: unknown): boolean => checkValue(schema, value).ok;
  if (!fits(part.version, payload.version)) throw new Refusal(null, 'state has no valid version');
  if (!fits(part.containment, payload.containment)) throw new Refusal(null, 'state has a malformed containment list');
  if (!fits(part.antivirus, payload.antivirus)) throw new Refusal(null, 'state has a malformed block list');
  // Network and DNS lists are absent from states of older servers.
  if (network !== undefined && (!fits(part.network, network) || addresses.some((a) => 'problem' in addressOrRange(a)))) throw new Refusal(null, 'state has a malformed address block list');
  if (payload.dns !== undefined && !fits(part.dns, payload.dns)) throw new Refusal(null, 'state has a malformed domain list');
  throw new Refusal(null, `state is malformed: ${whole.ok ? 'an address list holds what is not an address' : whole.problem}`);
}

/** The agent's signed report of the state version it applied and what it could not enforce. */
export function signStateReport(privateKey: KeyObject, deviceId: string, version: number, outcome: { failures: Record<string, string>; error?: string }): string {
  const payload: StateReportPayload = { v: AGENT_PROTOCOL_VERSION, deviceId, version, failures: outcome.failures, ...(outcome.error !== undefined ? { error: outcome.error } : {}), iat: Math.floor(Date.now() / 1000) };
  return signJws(privateKey, { typ: 'quell-state-report+jws' }, payload);
}

/** The agent's signed report of indicators that matched on its device since its last report. */
export function signIndicatorHits(privateKey: KeyObject, deviceId: string, seq: number, hits: IndicatorHit[]): string {
  const payload: IndicatorHitsPayload = { v: AGENT_PROTOCOL_VERSION, deviceId, seq, hits, iat: Math.floor(Date.now() / 1000) };
  return signJws(privateKey, { typ: 'quell-indicator-hits+jws' }, payload);
}

/** Checks the server's offboarding: the pinned key's signature, this device, and an issue time that is not in the future. */
export function verifyOffboard(jws: string, serverKey: KeyObject, deviceId: string, maxSkewSeconds: number): OffboardPayload {
  const payload = signedByServer<OffboardPayload>(jws, serverKey, 'offboarding');
  if (payload.v !== AGENT_PROTOCOL_VERSION || payload.kind !== 'quell-offboard') throw new Refusal(null, 'not an offboarding of this protocol version');
  if (payload.deviceId !== deviceId) throw new Refusal(null, 'offboarding is addressed to another device');
  const checked = checkValue(OffboardPayloadSchema, payload);
  if (!checked.ok) throw new Refusal(null, `offboarding is malformed: ${checked.problem}`);
  if (payload.iat > Math.floor(Date.now() / 1000) + maxSkewSeconds) throw new Refusal(null, 'offboarding is issued in the future');
  return payload;
}

/** The agent's signed report that it has offboarded itself. */
export function signOffboarded(privateKey: KeyObject, report: Omit<OffboardedPayload, 'v' | 'iat'>): string {
  const payload: OffboardedPayload = { v: AGENT_PROTOCOL_VERSION, ...report, iat: Math.floor(Date.now() / 1000) };
  return signJws(privateKey, { typ: 'quell-offboarded+jws' }, payload);
}

/** The agent's signed report of an effect it found lifted, and whether it put it back. */
export function signDrift(privateKey: KeyObject, drift: Omit<DriftPayload, 'v' | 'iat'>): string {
  const payload: DriftPayload = { v: AGENT_PROTOCOL_VERSION, ...drift, iat: Math.floor(Date.now() / 1000) };
  return signJws(privateKey, { typ: 'quell-drift+jws' }, payload);
}

/** The agent's signed report of an action it took on its own. */
export function signLocalAction(privateKey: KeyObject, action: Omit<LocalActionPayload, 'v' | 'iat'>): string {
  const payload: LocalActionPayload = { v: AGENT_PROTOCOL_VERSION, ...action, iat: Math.floor(Date.now() / 1000) };
  return signJws(privateKey, { typ: 'quell-local-action+jws' }, payload);
}
