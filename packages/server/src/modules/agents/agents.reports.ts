import { type KeyObject, createHash } from 'node:crypto';
import {
  ACTION_CATALOGUE, ACTION_OUTPUT_MAX_CHARS, ACTION_REPORT_SCHEMAS, AGENT_PROTOCOL_VERSION, type ActionType, AntivirusScanReportSchema, DriftPayloadSchema,
  ENFORCED_EFFECT_ACTION_TYPES, type EnforcedEffect, FLEET_ACTION_TYPES, IndicatorHitsPayloadSchema, LocalActionPayloadSchema, ResultPayloadSchema,
  StateReportPayloadSchema, UUID,
} from '@quell/contracts';
import { checkValue, parseJsonAs } from '@quell/contracts/checks';
import { verifyJws } from '@quell/contracts/jws';
import type { Db } from '../../db/store.ts';
import { recordIndicatorHits } from '../indicators/indicator-hits.ts';
import { AgentProtocolError, type AgentsServiceDeps, agentActor, ignoreStale, keyOf, signedReport } from './agents.core.ts';

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

const DRIFT_LABELS: Record<EnforcedEffect, string> = {
  isolation: 'Isolation', containment: 'Containment', code_restriction: 'Code restriction', user_containment: 'Containment of a user', stopped_service: 'A stopped service',
  removed_task: 'A removed scheduled task or persistence entry', quarantined_file: 'A quarantined file', address_blocks: 'Address block indicators',
};

/**
 * What agents report: the action lifecycle from their side (taken, done,
 * refused, done on their own), effects found lifted, indicator hits and the
 * state they applied. The gateway calls these with a device id it has
 * authenticated; every result is checked against that agent's own key and
 * that device's own actions.
 */
export function createAgentReports(deps: AgentsServiceDeps) {
  const { store, repo, actions, actionsRepo, audit, desiredState, alerts, clock } = deps;

  /**
   * Every file an antivirus scan found becomes an alert on the device (and
   * so starts or joins its investigation), in the transaction that records
   * the scan's result. Keyed by scan and file: each alert is raised once.
   */
  async function scanFindingsToAlerts(trx: Db, actionId: string, deviceId: string, output: string): Promise<void> {
    // The result was checked against the scan report's schema before it was recorded completed.
    const report = parseJsonAs(AntivirusScanReportSchema, output, ACTION_OUTPUT_MAX_CHARS);
    if (!report.ok) return;
    for (const { path, sha256: hash, signature } of report.value.findings.slice(0, 100)) {
      if (!path.startsWith('/') || path.length > 4096) continue;
      await alerts.createIn(trx, agentActor(deviceId), {
        title: `Malware found by a scan: ${signature.slice(0, 128)}`, severity: 'high', category: 'malware', detectionSource: 'antivirus',
        externalId: `${actionId}:${sha256(`${hash}:${path}`).slice(0, 32)}`, deviceId, occurredAt: new Date(clock.now()).toISOString(),
        evidence: [{ kind: 'file', path, sha256: hash }],
      });
    }
  }

  return {
    /** An agent's signed report of the state it applied, checked with the key its connection proved. */
    stateApplied(deviceId: string, key: KeyObject, jws: string): void {
      const report = signedReport('state report', StateReportPayloadSchema, deviceId, key, jws);
      const failures = Object.fromEntries(Object.entries(report.failures).slice(0, 1000).map(([id, why]) => [id.slice(0, 64), why.slice(0, 1000)]));
      desiredState.report(deviceId, { ...report, failures, ...(report.error !== undefined ? { error: report.error.slice(0, 4000) } : {}) });
    },

    /** The agent took the command: queued → in_progress. A repeated acknowledgement changes nothing. */
    async acknowledge(deviceId: string, actionId: string): Promise<void> {
      const row = await actionsRepo.findById(store.db, actionId);
      if (!row || row.device_id !== deviceId) throw new AgentProtocolError(`acknowledged action ${actionId} is not this device's`);
      if (row.status === 'queued') await actions.recordDelivery(agentActor(deviceId), actionId).catch(ignoreStale);
    },

    /**
     * A signed result: verified with the agent's own key, then recorded
     * once. A result that is not what its action type reports (a malformed
     * payload, a report that does not match its schema or does not fit)
     * fails the action with the reason: the agent is answered, the action
     * ends, and whatever waits for it goes on. Returns the action it is for.
     */
    async result(deviceId: string, jws: string): Promise<string> {
      const agent = await repo.findActive(store.db, deviceId);
      if (!agent) throw new AgentProtocolError('the agent was offboarded');
      const verified = verifyJws(jws, keyOf(agent));
      if ('problem' in verified) throw new AgentProtocolError(`result signature does not verify: ${verified.problem}`);
      const { payload } = verified;
      const envelope = (typeof payload === 'object' && payload !== null ? payload : {}) as { v?: unknown; deviceId?: unknown; actionId?: unknown };
      if (envelope.v !== AGENT_PROTOCOL_VERSION || envelope.deviceId !== deviceId) throw new AgentProtocolError('result is for another device');
      if (typeof envelope.actionId !== 'string' || !UUID.test(envelope.actionId)) throw new AgentProtocolError('result names no action');
      const row = await actionsRepo.findById(store.db, envelope.actionId);
      if (!row || row.device_id !== deviceId) throw new AgentProtocolError(`result for action ${envelope.actionId} which is not this device's`);
      const actor = agentActor(deviceId);
      // The acknowledgement may have been lost on the way: the result proves delivery.
      if (row.status === 'queued') await actions.recordDelivery(actor, row.id).catch(ignoreStale);
      const outcome = resultOf(row.type as ActionType, payload);
      const scanFindings = row.type === 'run_antivirus_scan' && outcome.outcome === 'completed' ? (trx: Db) => scanFindingsToAlerts(trx, row.id, deviceId, outcome.output ?? '') : undefined;
      await actions.recordResult(actor, row.id, outcome, { within: scanFindings }).catch(ignoreStale);
      return row.id;
    },

    /**
     * An action the agent took on its own, signed with the key its
     * connection proved: recorded as a completed action with source
     * antivirus, with an alert. Both are idempotent, so the agent's resends
     * until acknowledged never double them.
     */
    async localAction(deviceId: string, key: KeyObject, jws: string): Promise<string> {
      const local = signedReport('local action report', LocalActionPayloadSchema, deviceId, key, jws);
      const entity = local.entity;
      const actor = agentActor(deviceId);
      const action = await actions.recordLocalAction(actor, {
        id: local.actionId, deviceId, type: local.type, entity: { name: entity.name, path: entity.path, sha256: entity.sha256 },
        output: local.output.slice(0, ACTION_OUTPUT_MAX_CHARS), at: Math.min(local.at, clock.now()), source: 'antivirus',
      });
      const detection = local.detection.slice(0, 128);
      await alerts.create(actor, {
        title: `Malware quarantined: ${detection}`, description: action.result?.output ?? undefined, severity: 'high', category: 'malware',
        detectionSource: 'antivirus', externalId: action.id, deviceId, occurredAt: action.requestedAt,
        evidence: [{ kind: 'file', path: entity.path, sha256: entity.sha256 }],
      });
      return action.id;
    },

    /**
     * The agent found an effect of its actions lifted on its device and put
     * it back (or could not): counted on each action for this device, kept
     * in the audit log, and raised as an alert when it happens again.
     */
    async drift(deviceId: string, key: KeyObject, jws: string): Promise<void> {
      const drift = signedReport('drift report', DriftPayloadSchema, deviceId, key, jws);
      const actor = agentActor(deviceId);
      const at = Math.min(drift.at, clock.now());
      const detail = `${drift.found.slice(0, 500)}${drift.repaired ? '' : `; could not put it back: ${String(drift.error ?? 'unknown error').slice(0, 500)}`}`;
      for (const actionId of new Set(drift.actionIds)) {
        const row = await actionsRepo.findById(store.db, actionId);
        // An agent speaks only of effects in force on its own device: its own actions, or containments every agent enforces.
        const ours = row !== undefined && row.status === 'completed' && ENFORCED_EFFECT_ACTION_TYPES[drift.effect].includes(row.type as ActionType)
          && (row.device_id === deviceId || FLEET_ACTION_TYPES.includes(row.type as ActionType));
        if (!ours) continue;
        const count = await actionsRepo.recordDrift(store.db, { actionId, deviceId, at, detail, repaired: drift.repaired });
        await audit.recordAlone(actor, { kind: 'action.drift', targetType: 'action', targetId: actionId, after: { effect: drift.effect, detail, repaired: drift.repaired, count } });
        if (count !== 2) continue;
        // Once can be a firewall reload; twice is someone working against the action.
        const device = await repo.findDevice(store.db, deviceId);
        await alerts.create(actor, {
          title: `${DRIFT_LABELS[drift.effect]} lifted again on ${device?.name ?? deviceId}`,
          description: `The agent found the ${DRIFT_LABELS[drift.effect].toLowerCase()} of action ${actionId} lifted a second time and ${drift.repaired ? 'put it back' : 'could not put it back'}: ${detail}`,
          severity: 'high', category: 'tampering', detectionSource: 'quell_agent', externalId: `drift:${actionId}:${deviceId}`, deviceId, occurredAt: new Date(at).toISOString(),
          evidence: [],
        });
      }
    },

    /**
     * Indicators that matched on the agent's device, signed with the key its
     * connection proved: counted per indicator, device and hour, once per
     * report (its sequence number only grows), and the first hit of an
     * indicator on the device in an hour raises an alert, which starts or
     * joins an investigation like any other. Returns the sequence number to
     * acknowledge.
     */
    async indicatorHits(deviceId: string, key: KeyObject, jws: string): Promise<number> {
      const report = signedReport('indicator hits report', IndicatorHitsPayloadSchema, deviceId, key, jws);
      const actor = agentActor(deviceId);
      await store.transaction(async (trx) => {
        if (!(await repo.advanceHitsSeq(trx, deviceId, report.seq))) return; // counted already
        const device = await repo.getDevice(trx, deviceId);
        const { alerts: raised, unmatched } = await recordIndicatorHits(trx, device, report.hits, clock.now());
        for (const alert of raised) await alerts.createIn(trx, actor, alert);
        // Naming an indicator the device does not have is a stale state at best: kept, not counted.
        if (unmatched > 0) await audit.record(trx, actor, { kind: 'agent.hits_unmatched', targetType: 'device', targetId: deviceId, after: { unmatched, seq: report.seq } });
      });
      return report.seq;
    },

    /** The agent refused a command (bad signature, expired, replayed, wrong device…): kept in the audit log. */
    async refused(deviceId: string, actionId: string | null, reason: string): Promise<void> {
      // An agent speaks only for its own actions: a refusal naming another device's is kept without the link.
      const row = actionId === null ? undefined : await actionsRepo.findById(store.db, actionId);
      const own = row !== undefined && row.device_id === deviceId;
      await audit.recordAlone(agentActor(deviceId), {
        kind: 'agent.command_refused', targetType: 'action', targetId: own ? actionId : null, concerns: { deviceIds: [deviceId] },
        after: { reason: reason.slice(0, 1000), ...(actionId !== null && !own ? { claimedActionId: actionId.slice(0, 64) } : {}) },
      });
    },
  };
}

/**
 * What a signed result says happened to an action of this type: its
 * outcome, with free text cut to what the server keeps, and a structured
 * report taken only whole and only when it matches its schema. Anything
 * else fails the action with the reason in words.
 */
export function resultOf(type: ActionType, payload: unknown): { outcome: 'completed' | 'failed'; output?: string; error?: string } {
  const checked = checkValue(ResultPayloadSchema, payload);
  if (!checked.ok) return { outcome: 'failed', error: `The agent's result is malformed: ${checked.problem}` };
  const { outcome, output, error } = checked.value;
  const cut = (text: string | undefined) => (text === undefined ? {} : { output: text.slice(0, ACTION_OUTPUT_MAX_CHARS) });
  if (outcome === 'failed') return { outcome, ...cut(output), error: (error ?? 'failed without a reason').slice(0, ACTION_OUTPUT_MAX_CHARS) };
  const schema = ACTION_REPORT_SCHEMAS[type];
  if (schema === null) return { outcome, ...cut(output) };
  const report = parseJsonAs(schema, output ?? '', ACTION_OUTPUT_MAX_CHARS);
  if (!report.ok) return { outcome: 'failed', error: `The agent's answer is not a valid ${ACTION_CATALOGUE[type].label.toLowerCase()} report: ${report.problem}` };
  return { outcome, output: output! };
}
