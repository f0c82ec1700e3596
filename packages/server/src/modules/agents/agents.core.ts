import type { KeyObject } from 'node:crypto';
import { AGENT_PROTOCOL_VERSION, type Ed25519PublicJwk } from '@quell/contracts';
import { checkValue } from '@quell/contracts/checks';
import { publicKeyOf, verifyJws } from '@quell/contracts/jws';
import type { Static, TSchema } from 'typebox';
import { type Actor, systemActor } from '../../actor.ts';
import type { CommandSigner } from '../../command-signer.ts';
import type { AgentsTable } from '../../db/schema.ts';
import type { Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { ActionsRepository } from '../actions/actions.repository.ts';
import type { ActionsService } from '../actions/actions.service.ts';
import type { AlertsService } from '../alerts/alerts.service.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { DesiredStateService } from '../desired-state/desired-state.service.ts';
import type { AgentsRepository } from './agents.repository.ts';

/** What every part of the agents service shares: its dependencies, how an agent acts, and how what it signs is checked. */

export interface AgentsServiceDeps {
  store: Store;
  repo: AgentsRepository;
  actions: ActionsService;
  actionsRepo: ActionsRepository;
  audit: AuditService;
  desiredState: DesiredStateService;
  alerts: AlertsService;
  signer: CommandSigner;
  clock: Clock;
  ids: Ids;
  /** Where uploaded investigation packages are kept. */
  packagesDir: string;
  /** Told of devices with something new to hear (the dispatch bus): here, that they are to offboard. */
  dispatch?: (deviceIds: string[]) => void;
}

/** A protocol step the agent got wrong; the gateway logs it and closes the connection. */
export class AgentProtocolError extends Error {}

/** Who acts when a device's agent does. */
export const agentActor = (deviceId: string): Actor => systemActor(`agent:${deviceId}`);

/** The key an agent enrolled with, which everything it signs is checked against. */
export const keyOf = (agent: Pick<AgentsTable, 'public_key'>): KeyObject => publicKeyOf(JSON.parse(agent.public_key) as Ed25519PublicJwk);

/** The signed order to offboard, for an agent asked to and not done yet; otherwise null. */
export function offboardOrder(deps: Pick<AgentsServiceDeps, 'signer' | 'clock'>, agent: Pick<AgentsTable, 'device_id' | 'offboard_requested_at' | 'offboard_release_effects'>): string | null {
  if (agent.offboard_requested_at === null) return null;
  return deps.signer.signOffboard({ deviceId: agent.device_id, releaseEffects: Number(agent.offboard_release_effects) === 1 }, deps.clock.now());
}

/**
 * A report an agent signed, checked in the order that names what is wrong:
 * the signature, then whose report it is, then its shape against the
 * schema from the contracts. Anything short of all three is refused.
 */
export function signedReport<T extends TSchema>(what: string, schema: T, deviceId: string, key: KeyObject, jws: string): Static<T> {
  const verified = verifyJws(jws, key);
  if ('problem' in verified) throw new AgentProtocolError(`${what} signature does not verify`);
  const envelope = (typeof verified.payload === 'object' && verified.payload !== null ? verified.payload : {}) as { v?: unknown; deviceId?: unknown };
  if (envelope.v !== AGENT_PROTOCOL_VERSION || envelope.deviceId !== deviceId) throw new AgentProtocolError(`${what} is for another device`);
  const checked = checkValue(schema, verified.payload);
  if (!checked.ok) throw new AgentProtocolError(`${what} is malformed: ${checked.problem}`);
  return checked.value;
}

/** A result or acknowledgement for an action that already moved on (a redelivery): nothing to do. */
export function ignoreStale(error: unknown): void {
  if (error instanceof QuellError && error.code === 'action_state_conflict') return;
  throw error;
}
