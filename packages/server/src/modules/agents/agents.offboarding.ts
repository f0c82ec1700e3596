import type { KeyObject } from 'node:crypto';
import { OffboardedPayloadSchema } from '@quell/contracts';
import { type Actor, requirePermission } from '../../actor.ts';
import { QuellError } from '../../errors.ts';
import { AgentProtocolError, type AgentsServiceDeps, agentActor, offboardOrder, signedReport } from './agents.core.ts';

/** Offboarding an agent: asked by a person, told to the agent signed, and ended by the agent's report. */
export function createAgentOffboarding(deps: AgentsServiceDeps) {
  const { store, repo, audit, clock } = deps;

  return {
    /**
     * Offboards a device's agent: it is told, signed, now or when it next
     * connects; it releases what Quell put in force (unless `releaseEffects`
     * is false), leaves its vault with instructions, removes its identity and
     * reports. Its report revokes it: no command reaches it meanwhile.
     */
    async offboard(actor: Actor, deviceId: string, options: { releaseEffects?: boolean } = {}): Promise<void> {
      requirePermission(actor, 'devices:manage');
      const releaseEffects = options.releaseEffects ?? true;
      await store.transaction(async (trx) => {
        if (!(await repo.requestOffboard(trx, deviceId, clock.now(), releaseEffects))) throw new QuellError('device_not_found', `No enrolled agent on device ${deviceId}`);
        await audit.record(trx, actor, { kind: 'agent.offboard', targetType: 'device', targetId: deviceId, after: { releaseEffects } });
      });
      deps.dispatch?.([deviceId]);
    },

    /** The signed offboarding for a device whose offboarding was asked and not done yet, or null. */
    async offboardFrame(deviceId: string): Promise<string | null> {
      const agent = await repo.findActive(store.db, deviceId);
      return agent ? offboardOrder(deps, agent) : null;
    },

    /** The agent's signed report that it has offboarded itself: kept, audited, and the agent revoked. */
    async offboarded(deviceId: string, key: KeyObject, jws: string): Promise<void> {
      const report = signedReport('offboarding report', OffboardedPayloadSchema, deviceId, key, jws);
      const agent = await repo.findActive(store.db, deviceId);
      if (!agent || agent.offboard_requested_at === null) throw new AgentProtocolError('this agent was not asked to offboard');
      const kept = { released: report.released, kept: report.kept, failures: report.failures, vault: report.vault };
      await store.transaction(async (trx) => {
        await repo.revoke(trx, deviceId, clock.now(), JSON.stringify(kept));
        await audit.record(trx, agentActor(deviceId), { kind: 'agent.offboarded', targetType: 'device', targetId: deviceId, after: kept });
      });
    },
  };
}
