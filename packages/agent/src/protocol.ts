import { type KeyObject, sign as signBytes } from 'node:crypto';
import { ACTION_TYPES, AGENT_PROTOCOL_VERSION, DOMAIN_NAME, addressOrRange, type CommandPayload, type DriftPayload, type IndicatorHit, type IndicatorHitsPayload, type OffboardPayload, type OffboardedPayload, UUID, canonicalParameters, parameterProblem, upgradeParameters, type LocalActionPayload, type ResultPayload, type StatePayload, type StateReportPayload, challengeMessage } from '@quell/contracts';
import { CompactSign, compactVerify } from 'jose';

/** The most address blocks one state may carry: a set of this size is applied in well under a second. */
const NETWORK_BLOCKS_MAX = 200_000;

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
  const payload = await signedByServer<CommandPayload>(jws, serverKey, 'command');
  const actionId = typeof payload.actionId === 'string' && UUID.test(payload.actionId) ? payload.actionId : null;
  const now = Math.floor(Date.now() / 1000);
  if (payload.v !== AGENT_PROTOCOL_VERSION) throw new Refusal(actionId, `unknown protocol version ${String(payload.v)}`);
  if (payload.deviceId !== deviceId) throw new Refusal(actionId, 'command is addressed to another device');
  if (typeof payload.exp !== 'number' || payload.exp <= now) throw new Refusal(actionId, 'command has expired');
  if (typeof payload.iat !== 'number' || payload.iat > now + maxSkewSeconds) throw new Refusal(actionId, 'command is issued in the future');
  if (typeof payload.nonce !== 'string' || payload.nonce.length < 16 || payload.nonce.length > 128) throw new Refusal(actionId, 'command has no nonce');
  // A server older than typed parameters signs lists as strings: read them as today's lists before judging them.
  const command: CommandPayload = { ...payload, parameters: upgradeParameters(payload.parameters) as CommandPayload['parameters'] };
  const malformed = commandShapeProblem(command);
  if (malformed) throw new Refusal(UUID.test(String(payload.actionId)) ? payload.actionId : null, `command is malformed: ${malformed}`);
  return { ...command, parameters: canonicalParameters(command.parameters) };
}

/** What is wrong with a signed command's content, or null: ids, type, entity and every parameter against its rule. */
export function commandShapeProblem(payload: CommandPayload): string | null {
  if (typeof payload.actionId !== 'string' || !UUID.test(payload.actionId)) return 'actionId is not a UUID';
  if (payload.undoOf !== null && (typeof payload.undoOf !== 'string' || !UUID.test(payload.undoOf))) return 'undoOf is neither null nor a UUID';
  if (!(ACTION_TYPES as readonly string[]).includes(payload.type)) return `unknown action type ${JSON.stringify(String(payload.type).slice(0, 64))}`;
  const entity = payload.entity as Partial<CommandPayload['entity']> | null;
  if (typeof entity !== 'object' || entity === null) return 'entity is missing';
  if (typeof entity.name !== 'string' || entity.name.length === 0 || entity.name.length > 1024) return 'entity.name must be 1 to 1024 characters';
  if (entity.path !== undefined && (typeof entity.path !== 'string' || entity.path.length > 4096)) return 'entity.path must be at most 4096 characters';
  if (entity.sha256 !== undefined && (typeof entity.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(entity.sha256))) return 'entity.sha256 is not a SHA-256';
  return parameterProblem(payload.type, payload.parameters);
}

/** The payload of a JWS the pinned server key signed, as an object; refused with `what` named otherwise. */
async function signedByServer<T>(jws: string, serverKey: Parameters<typeof compactVerify>[1], what: string): Promise<T> {
  let payload: unknown;
  try {
    const verified = await compactVerify(jws, serverKey, { algorithms: ['EdDSA'] });
    payload = JSON.parse(new TextDecoder().decode(verified.payload));
  } catch (error) {
    throw new Refusal(null, `${what} signature does not verify against the pinned server key: ${(error as Error).message}`);
  }
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) throw new Refusal(null, `${what} payload is not an object`);
  return payload as T;
}

/** A result signed with the agent's key, which the server checks against the key it enrolled. */
export async function signResult(privateKey: KeyObject, deviceId: string, actionId: string, result: { outcome: 'completed' | 'failed'; output?: string; error?: string }): Promise<string> {
  const payload: ResultPayload = {
    v: AGENT_PROTOCOL_VERSION, actionId, deviceId, outcome: result.outcome, iat: Math.floor(Date.now() / 1000),
    ...(result.output !== undefined ? { output: result.output } : {}), ...(result.error !== undefined ? { error: result.error } : {}),
  };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'EdDSA', typ: 'quell-result+jws' }).sign(privateKey);
}

/** Checks a desired-state frame: the pinned server key's signature, the protocol version and the shape of its entries. */
export async function verifyState(jws: string, serverKey: Parameters<typeof compactVerify>[1]): Promise<StatePayload> {
  const payload = await signedByServer<StatePayload>(jws, serverKey, 'state');
  if (payload.v !== AGENT_PROTOCOL_VERSION || payload.kind !== 'quell-state') throw new Refusal(null, 'not a desired-state payload of this protocol version');
  if (!Number.isSafeInteger(payload.version) || payload.version < 1) throw new Refusal(null, 'state has no valid version');
  if (!Array.isArray(payload.containment) || !payload.containment.every((e) => typeof e === 'object' && e !== null && typeof e.actionId === 'string' && typeof e.address === 'string')) {
    throw new Refusal(null, 'state has a malformed containment list');
  }
  const antivirus = payload.antivirus as Record<string, unknown> | undefined;
  const hashList = (value: unknown, length: number): boolean => Array.isArray(value) && value.every((h) => typeof h === 'string' && h.length === length && /^[0-9a-f]+$/.test(h));
  const anyHashList = (value: unknown): boolean => Array.isArray(value) && value.every((h) => typeof h === 'string' && /^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})$/.test(h));
  if (!hashList(antivirus?.blockSha256, 64) || (antivirus?.blockSha1 !== undefined && !hashList(antivirus.blockSha1, 40)) || (antivirus?.blockMd5 !== undefined && !hashList(antivirus.blockMd5, 32))
    || (antivirus?.audit !== undefined && !anyHashList(antivirus.audit)) || (antivirus?.remediate !== undefined && !anyHashList(antivirus.remediate))) {
    throw new Refusal(null, 'state has a malformed block list');
  }
  const network = payload.network as { blockAddresses?: unknown; allowAddresses?: unknown; auditAddresses?: unknown } | undefined;
  const addressList = (value: unknown): boolean => Array.isArray(value) && value.length <= NETWORK_BLOCKS_MAX && value.every((a) => typeof a === 'string' && !('problem' in addressOrRange(a)));
  const optionalAddressList = (value: unknown): boolean => value === undefined || addressList(value);
  if (network !== undefined && (!addressList(network.blockAddresses) || !optionalAddressList(network.allowAddresses) || !optionalAddressList(network.auditAddresses))) {
    throw new Refusal(null, 'state has a malformed address block list');
  }
  const dns = payload.dns as { block?: unknown; audit?: unknown; allow?: unknown } | undefined;
  const nameList = (value: unknown): boolean => Array.isArray(value) && value.length <= NETWORK_BLOCKS_MAX && value.every((n) => typeof n === 'string' && DOMAIN_NAME.test(n));
  if (dns !== undefined && (!nameList(dns.block) || !nameList(dns.audit) || !nameList(dns.allow))) throw new Refusal(null, 'state has a malformed domain list');
  return payload;
}

/** A compact JWS made with node:crypto in place: reports every agent sends at once need no round trip through jose. */
function signCompact(privateKey: KeyObject, typ: string, payload: object): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const signingInput = `${encode({ alg: 'EdDSA', typ })}.${encode(payload)}`;
  return `${signingInput}.${signBytes(null, Buffer.from(signingInput), privateKey).toString('base64url')}`;
}

/** The agent's signed report of the state version it applied and what it could not enforce. */
export function signStateReport(privateKey: KeyObject, deviceId: string, version: number, outcome: { failures: Record<string, string>; error?: string }): string {
  const payload: StateReportPayload = { v: AGENT_PROTOCOL_VERSION, deviceId, version, failures: outcome.failures, ...(outcome.error !== undefined ? { error: outcome.error } : {}), iat: Math.floor(Date.now() / 1000) };
  return signCompact(privateKey, 'quell-state-report+jws', payload);
}

/** The agent's signed report of indicators that matched on its device since its last report. */
export function signIndicatorHits(privateKey: KeyObject, deviceId: string, seq: number, hits: IndicatorHit[]): string {
  const payload: IndicatorHitsPayload = { v: AGENT_PROTOCOL_VERSION, deviceId, seq, hits, iat: Math.floor(Date.now() / 1000) };
  return signCompact(privateKey, 'quell-indicator-hits+jws', payload);
}

/** Checks the server's offboarding: the pinned key's signature, this device, and an issue time that is not in the future. */
export async function verifyOffboard(jws: string, serverKey: Parameters<typeof compactVerify>[1], deviceId: string, maxSkewSeconds: number): Promise<OffboardPayload> {
  const payload = await signedByServer<OffboardPayload>(jws, serverKey, 'offboarding');
  if (payload.v !== AGENT_PROTOCOL_VERSION || payload.kind !== 'quell-offboard') throw new Refusal(null, 'not an offboarding of this protocol version');
  if (payload.deviceId !== deviceId) throw new Refusal(null, 'offboarding is addressed to another device');
  if (typeof payload.releaseEffects !== 'boolean') throw new Refusal(null, 'offboarding does not say whether to release what is in force');
  if (typeof payload.iat !== 'number' || payload.iat > Math.floor(Date.now() / 1000) + maxSkewSeconds) throw new Refusal(null, 'offboarding is issued in the future');
  return payload;
}

/** The agent's signed report that it has offboarded itself. */
export function signOffboarded(privateKey: KeyObject, report: Omit<OffboardedPayload, 'v' | 'iat'>): string {
  const payload: OffboardedPayload = { v: AGENT_PROTOCOL_VERSION, ...report, iat: Math.floor(Date.now() / 1000) };
  return signCompact(privateKey, 'quell-offboarded+jws', payload);
}

/** The agent's signed report of an effect it found lifted, and whether it put it back. */
export function signDrift(privateKey: KeyObject, drift: Omit<DriftPayload, 'v' | 'iat'>): string {
  const payload: DriftPayload = { v: AGENT_PROTOCOL_VERSION, ...drift, iat: Math.floor(Date.now() / 1000) };
  return signCompact(privateKey, 'quell-drift+jws', payload);
}

/** The agent's signed report of an action it took on its own. */
export function signLocalAction(privateKey: KeyObject, action: Omit<LocalActionPayload, 'v' | 'iat'>): string {
  const payload: LocalActionPayload = { v: AGENT_PROTOCOL_VERSION, ...action, iat: Math.floor(Date.now() / 1000) };
  return signCompact(privateKey, 'quell-local-action+jws', payload);
}
