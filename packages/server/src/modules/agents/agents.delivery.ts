import type { KeyObject } from 'node:crypto';
import { challengeMessage } from '@quell/contracts';
import { verifyMessage } from '@quell/contracts/jws';
import { type AgentsServiceDeps, keyOf, offboardOrder } from './agents.core.ts';

/** Queued commands read at once to catch up on: far more than are ever queued at one moment. */
const QUEUED_COMMANDS_READ = 10_000;

/** What a connected agent is given: its connection proved, the desired state of its group, its signed commands. */
export function createAgentDelivery(deps: AgentsServiceDeps) {
  const { store, repo, actionsRepo, desiredState, clock } = deps;

  return {
    /**
     * Checks an agent's answer to the connection challenge against its
     * enrolled key; when it holds, returns that key, the device's group, and
     * whether the agent was asked to offboard (then, the signed order).
     */
    async authenticate(deviceId: string, nonce: string, signature: string): Promise<{ key: KeyObject; groupId: string | null; offboard: string | null } | null> {
      const agent = await repo.findActive(store.db, deviceId);
      if (!agent) return null;
      const key = keyOf(agent);
      if (!verifyMessage(key, challengeMessage(nonce, deviceId), signature)) return null;
      const device = await repo.getDevice(store.db, deviceId);
      return { key, groupId: device.group_id, offboard: offboardOrder(deps, agent) };
    },

    /** The signed desired state agents of this device group should enforce now, or null when there has never been one. */
    currentState: (groupId: string | null) => desiredState.current(groupId),

    /** Signed commands this device should hold: every queued action, and in-progress ones whose result may have been lost. */
    async openCommands(deviceId: string): Promise<Array<{ actionId: string; jws: string }>> {
      const rows = await actionsRepo.openCommandsForDevice(store.db, deviceId);
      return rows.map((r) => ({ actionId: r.id, jws: r.command_jws! }));
    },

    /** Queued commands, each with its device: what connected agents should hold by now. */
    async queuedCommands(): Promise<Array<{ actionId: string; deviceId: string }>> {
      const rows = await actionsRepo.queuedCommands(store.db, QUEUED_COMMANDS_READ);
      return rows.map((r) => ({ actionId: r.id, deviceId: r.device_id }));
    },

    /** Records that these devices' agents were heard from now. */
    async touch(deviceIds: readonly string[]): Promise<void> {
      await repo.touchDevices(store.db, deviceIds, clock.now());
    },
  };
}
