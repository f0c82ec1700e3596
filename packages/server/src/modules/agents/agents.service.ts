import { type KeyObject, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ACTION_CATALOGUE, ACTION_OUTPUT_MAX_CHARS, ACTION_REPORT_SCHEMAS, AGENT_PROTOCOL_VERSION, type ActionType, AntivirusScanReportSchema, type CreateEnrolmentTokenBody, DriftPayloadSchema, ENFORCED_EFFECT_ACTION_TYPES, type Ed25519PublicJwk,
  DELIVERABLE_STATUSES, type EnforcedEffect, FLEET_ACTION_TYPES, isStatusIn, type EnrolBody, type EnrolResponse, IndicatorHitsPayloadSchema, LocalActionPayloadSchema, OffboardedPayloadSchema, ResultPayloadSchema, StateReportPayloadSchema, UUID,
  challengeMessage, packageUploadMessage,
} from '@quell/contracts';
import { sql } from 'kysely';
import { checkValue, parseJsonAs } from '@quell/contracts/checks';
import type { Static, TSchema } from 'typebox';
import { Readable } from 'node:stream';
import { createGunzip, constants as zlib } from 'node:zlib';
import { publicKeyOf, verifyJws, verifyMessage } from '@quell/contracts/jws';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Actor, inScope, requirePermission, systemActor } from '../../actor.ts';
import type { AgentsTable, EnrolmentTokensTable } from '../../db/schema.ts';
import type { Db, Store } from '../../db/store.ts';
import { QuellError } from '../../errors.ts';
import type { Clock, Ids } from '../../infra.ts';
import type { ActionsRepository } from '../actions/actions.repository.ts';
import { applyGroupRules } from '../devices/group-rules.ts';
import type { ActionsService } from '../actions/actions.service.ts';
import type { AuditService } from '../audit/audit.service.ts';
import type { AlertsService } from '../alerts/alerts.service.ts';
import type { DesiredStateService } from '../desired-state/desired-state.service.ts';
import { recordIndicatorHits } from '../indicators/indicator-hits.ts';
import type { CommandSigner } from '../../command-signer.ts';

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

export function presentEnrolmentToken(row: EnrolmentTokensTable) {
  return {
    id: row.id,
    name: row.name,
    usesLeft: row.uses_left,
    expiresAt: new Date(row.expires_at).toISOString(),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at).toISOString(),
  };
}

const TOKEN_USED_UP = 'The enrolment token is used up: every one of its uses has enrolled an agent';

/** A protocol step the agent got wrong; the gateway logs it and closes the connection. */
export class AgentProtocolError extends Error {}

/**
 * Enrolment and the agent side of the action lifecycle. The gateway calls
 * these with a device id it has authenticated; every result is checked
 * against that agent's own key and that device's own actions.
 */
const DRIFT_LABELS: Record<EnforcedEffect, string> = {
  isolation: 'Isolation', containment: 'Containment', code_restriction: 'Code restriction', user_containment: 'Containment of a user', stopped_service: 'A stopped service',
  removed_task: 'A removed scheduled task or persistence entry', quarantined_file: 'A quarantined file', address_blocks: 'Address block indicators',
};

export function createAgentsService(deps: {
  store: Store; actions: ActionsService; actionsRepo: ActionsRepository; audit: AuditService; desiredState: DesiredStateService; alerts: AlertsService;
  signer: CommandSigner; clock: Clock; ids: Ids; packagesDir: string;
  /** Told of devices with something new to hear (the dispatch bus): here, that they are to offboard. */
  dispatch?: (deviceIds: string[]) => void;
}) {
  const { store, actions, actionsRepo, audit, desiredState, alerts, signer, clock, ids, packagesDir } = deps;
  const packageFile = (actionId: string): string => join(packagesDir, `${actionId}.tar.gz`);
  const agentActor = (deviceId: string): Actor => systemActor(`agent:${deviceId}`);

  async function activeAgent(deviceId: string): Promise<AgentsTable | null> {
    const row = await store.db.selectFrom('agents').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
    return row && row.revoked_at === null ? row : null;
  }

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
    serverKey: signer.publicJwk,

    async createEnrolmentToken(actor: Actor, body: CreateEnrolmentTokenBody) {
      requirePermission(actor, 'devices:manage');
      const secret = randomBytes(32).toString('base64url');
      const now = clock.now();
      const row: EnrolmentTokensTable = {
        id: ids.next(), name: body.name, secret_hash: sha256(secret), uses_left: body.uses, created_by: actor.name,
        created_at: now, expires_at: now + body.expiresInDays * 86_400_000, revoked_at: null,
      };
      await store.transaction(async (trx) => {
        await trx.insertInto('enrolment_tokens').values(row).execute();
        await audit.record(trx, actor, { kind: 'enrolment_token.create', targetType: 'enrolment_token', targetId: row.id, after: presentEnrolmentToken(row) });
      });
      return { token: presentEnrolmentToken(row), secret: `qe_${row.id}_${secret}` };
    },

    /** Every enrolment token, newest first; their secrets are never shown again. */
    async listEnrolmentTokens(actor: Actor) {
      requirePermission(actor, 'devices:manage');
      return (await store.db.selectFrom('enrolment_tokens').selectAll().orderBy('created_at', 'desc').limit(1000).execute()).map(presentEnrolmentToken);
    },

    /** Revokes an enrolment token: no agent enrols with it any more; agents already enrolled stay. */
    async revokeEnrolmentToken(actor: Actor, id: string) {
      requirePermission(actor, 'devices:manage');
      return store.transaction(async (trx) => {
        const row = await trx.selectFrom('enrolment_tokens').selectAll().where('id', '=', id).executeTakeFirst();
        if (!row) throw new QuellError('token_not_found', `No such enrolment token: ${id}`);
        if (row.revoked_at !== null) return presentEnrolmentToken(row);
        const revoked = { ...row, revoked_at: clock.now() };
        await trx.updateTable('enrolment_tokens').set({ revoked_at: revoked.revoked_at }).where('id', '=', id).execute();
        await audit.record(trx, actor, { kind: 'enrolment_token.revoke', targetType: 'enrolment_token', targetId: id, before: presentEnrolmentToken(row), after: presentEnrolmentToken(revoked) });
        return presentEnrolmentToken(revoked);
      });
    },

    /** Registers a new agent: spends one use of the token, creates its device, and answers with the key to pin. */
    async enrol(body: EnrolBody, sourceIp: string | null): Promise<EnrolResponse> {
      const match = /^qe_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/.exec(body.token);
      const now = clock.now();
      const deviceId = await store.transaction(async (trx) => {
        const token = match ? await trx.selectFrom('enrolment_tokens').selectAll().where('id', '=', match[1]!).executeTakeFirst() : undefined;
        const given = Buffer.from(sha256(match?.[2] ?? ''), 'hex');
        if (!token || !timingSafeEqual(Buffer.from(token.secret_hash, 'hex'), given)) throw new QuellError('enrolment_token_invalid');
        // Whoever holds the secret may learn why it no longer enrols; nobody else learns anything.
        if (token.revoked_at !== null) throw new QuellError('enrolment_token_invalid', 'The enrolment token was revoked');
        if (token.expires_at <= now) throw new QuellError('enrolment_token_invalid', 'The enrolment token has expired');
        if (token.uses_left <= 0) throw new QuellError('enrolment_token_invalid', TOKEN_USED_UP);
        // Decrement in the database, not compare-and-set on the count read above: agents enrolling at once on
        // PostgreSQL all read the same count, and all but one would be refused while uses remain. Each UPDATE
        // waits for the row lock and rechecks `uses_left > 0`, so the token is never spent beyond its uses.
        const spent = await trx.updateTable('enrolment_tokens').set((eb) => ({ uses_left: eb('uses_left', '-', 1) })).where('id', '=', token.id).where('uses_left', '>', 0).executeTakeFirst();
        if (Number(spent.numUpdatedRows) !== 1) throw new QuellError('enrolment_token_invalid', TOKEN_USED_UP);
        // A host Quell learnt of from another engine's alerts, never enrolled: its agent takes that device over,
        // so its alerts, incidents and actions so far are the managed device's.
        const known = await trx.selectFrom('devices').leftJoin('agents', 'agents.device_id', 'devices.id').select('devices.id')
          .where('devices.discovered_from', 'is not', null).where('agents.device_id', 'is', null)
          .where(sql<string>`lower(devices.name)`, '=', body.facts.hostname.toLowerCase()).executeTakeFirst();
        const agentRow = (deviceId: string) => ({ device_id: deviceId, public_key: JSON.stringify(body.publicKey), facts: JSON.stringify(body.facts), enrolled_at: now, revoked_at: null, state_version: null, state_error: null, state_failures: null });
        // Two agents of that name enrolling at once: the first takes the device, the other gets one of its own.
        const tookOver = known !== undefined && await trx.insertInto('agents').values(agentRow(known.id))
          .onConflict((oc) => oc.column('device_id').doNothing()).returning('device_id').executeTakeFirst() !== undefined;
        let id: string;
        if (tookOver) {
          id = known.id;
          await trx.updateTable('devices').set({ platform: body.facts.platform, last_seen_at: now }).where('id', '=', id).execute();
        } else {
          id = ids.next();
          await trx.insertInto('devices').values({ id, name: body.facts.hostname, platform: body.facts.platform, group_id: null, created_at: now, last_seen_at: now, group_pinned: 0 }).execute();
          await applyGroupRules(trx, [id]);
          await trx.insertInto('agents').values(agentRow(id)).execute();
        }
        await audit.record(trx, { ...systemActor(`enrolment:${token.name}`), sourceIp }, {
          kind: 'agent.enrol', targetType: 'device', targetId: id, after: { facts: body.facts, tokenId: token.id, ...(tookOver ? { tookOverDiscoveredDevice: true } : {}) },
        });
        return id;
      });
      return { deviceId, serverKey: signer.publicJwk, serverKeyId: signer.keyId };
    },

    /**
     * Checks an agent's answer to the connection challenge against its
     * enrolled key; when it holds, returns that key and the device's group.
     */
    async authenticate(deviceId: string, nonce: string, signature: string): Promise<{ key: KeyObject; groupId: string | null } | null> {
      const agent = await activeAgent(deviceId);
      if (!agent) return null;
      const key = keyOf(agent);
      if (!verifyMessage(key, challengeMessage(nonce, deviceId), signature)) return null;
      const device = await store.db.selectFrom('devices').select('group_id').where('id', '=', deviceId).executeTakeFirstOrThrow();
      return { key, groupId: device.group_id };
    },

    /** The signed desired state agents of this device group should enforce now, or null when there has never been one. */
    currentState: (groupId: string | null) => desiredState.current(groupId),

    /** An agent's signed report of the state it applied, checked with the key its connection proved. */
    stateApplied(deviceId: string, key: KeyObject, jws: string): void {
      const report = signedReport('state report', StateReportPayloadSchema, deviceId, key, jws);
      const failures = Object.fromEntries(Object.entries(report.failures).slice(0, 1000).map(([id, why]) => [id.slice(0, 64), why.slice(0, 1000)]));
      desiredState.report(deviceId, { ...report, failures, ...(report.error !== undefined ? { error: report.error.slice(0, 4000) } : {}) });
    },

    /** Signed commands this device should hold: every queued action, and in-progress ones whose result may have been lost. */
    async openCommands(deviceId: string): Promise<Array<{ actionId: string; jws: string }>> {
      const rows = await actionsRepo.openCommandsForDevice(store.db, deviceId);
      return rows.map((r) => ({ actionId: r.id, jws: r.command_jws! }));
    },

    /** Records that these devices' agents were heard from now. */
    async touch(deviceIds: readonly string[]): Promise<void> {
      const now = clock.now();
      for (let i = 0; i < deviceIds.length; i += 500) {
        await store.db.updateTable('devices').set({ last_seen_at: now }).where('id', 'in', deviceIds.slice(i, i + 500)).execute();
      }
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
      const agent = await activeAgent(deviceId);
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
        const device = await store.db.selectFrom('devices').select('name').where('id', '=', deviceId).executeTakeFirst();
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
        const fresh = await trx.updateTable('agents').set({ hits_seq: report.seq }).where('device_id', '=', deviceId).where('revoked_at', 'is', null)
          .where((eb) => eb.or([eb('hits_seq', 'is', null), eb('hits_seq', '<', report.seq)])).executeTakeFirst();
        if (Number(fresh.numUpdatedRows) !== 1) return; // counted already
        const device = await trx.selectFrom('devices').select(['id', 'name', 'group_id']).where('id', '=', deviceId).executeTakeFirstOrThrow();
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

    /**
     * Stores the investigation package an agent collected, once: the upload
     * must be signed by the enrolled key of the action's own device, for a
     * collect action delivered (or on its way) and not ended.
     */
    async storePackage(actionId: string, deviceId: string, signature: string, body: Buffer): Promise<{ sha256: string; bytes: number }> {
      const agent = await activeAgent(deviceId);
      const row = await actionsRepo.findById(store.db, actionId);
      const sha256 = createHash('sha256').update(body).digest('hex');
      if (!agent || !row || row.device_id !== deviceId || !verifyMessage(keyOf(agent), packageUploadMessage(actionId, deviceId, sha256), signature)) {
        throw new QuellError('agent_signature_invalid');
      }
      if (row.type !== 'collect_investigation_package' || !isStatusIn(DELIVERABLE_STATUSES, row.status) || existsSync(packageFile(actionId))) throw new QuellError('package_not_expected');
      if (!(await isTarGz(body))) throw new QuellError('validation_failed', 'An investigation package is a gzip-compressed tar archive; this upload is not one');
      // The agent's acknowledgement may still be on its way over the other channel: the signed upload proves delivery.
      if (row.status === 'queued') await actions.recordDelivery(agentActor(deviceId), actionId).catch(ignoreStale);
      mkdirSync(packagesDir, { recursive: true, mode: 0o700 });
      writeFileSync(packageFile(actionId), body, { mode: 0o600, flag: 'wx' });
      await audit.recordAlone(agentActor(deviceId), { kind: 'action.package_uploaded', targetType: 'action', targetId: actionId, after: { sha256, bytes: body.length } });
      return { sha256, bytes: body.length };
    },

    /** The package of a completed collect action, for people allowed to read investigation packages. */
    async openPackage(actor: Actor, actionId: string): Promise<{ path: string; bytes: number }> {
      requirePermission(actor, 'investigation_packages:read');
      const row = await actionsRepo.findById(store.db, actionId);
      if (!row || !inScope(actor, row.group_id)) throw new QuellError('action_not_found');
      const path = packageFile(actionId);
      if (row.type !== 'collect_investigation_package' || row.status !== 'completed' || !existsSync(path)) throw new QuellError('package_not_found');
      await audit.recordAlone(actor, { kind: 'action.package_downloaded', targetType: 'action', targetId: actionId });
      return { path, bytes: statSync(path).size };
    },

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
        const result = await trx.updateTable('agents').set({ offboard_requested_at: clock.now(), offboard_release_effects: releaseEffects ? 1 : 0 })
          .where('device_id', '=', deviceId).where('revoked_at', 'is', null).executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) throw new QuellError('device_not_found', `No enrolled agent on device ${deviceId}`);
        await audit.record(trx, actor, { kind: 'agent.offboard', targetType: 'device', targetId: deviceId, after: { releaseEffects } });
      });
      deps.dispatch?.([deviceId]);
    },

    /** The signed offboarding for a device whose offboarding was asked and not done yet, or null. */
    async offboardFrame(deviceId: string): Promise<string | null> {
      const agent = await activeAgent(deviceId);
      if (!agent || agent.offboard_requested_at === null) return null;
      return signer.signOffboard({ deviceId, releaseEffects: Number(agent.offboard_release_effects) === 1 }, clock.now());
    },

    /** The agent's signed report that it has offboarded itself: kept, audited, and the agent revoked. */
    async offboarded(deviceId: string, key: KeyObject, jws: string): Promise<void> {
      const report = signedReport('offboarding report', OffboardedPayloadSchema, deviceId, key, jws);
      const agent = await activeAgent(deviceId);
      if (!agent || agent.offboard_requested_at === null) throw new AgentProtocolError('this agent was not asked to offboard');
      const kept = { released: report.released, kept: report.kept, failures: report.failures, vault: report.vault };
      await store.transaction(async (trx) => {
        await trx.updateTable('agents').set({ revoked_at: clock.now(), offboard_report: JSON.stringify(kept) }).where('device_id', '=', deviceId).execute();
        await audit.record(trx, agentActor(deviceId), { kind: 'agent.offboarded', targetType: 'device', targetId: deviceId, after: kept });
      });
    },
  };
}
export type AgentsService = ReturnType<typeof createAgentsService>;

/** The key an agent enrolled with, which everything it signs is checked against. */
const keyOf = (agent: Pick<AgentsTable, 'public_key'>): KeyObject => publicKeyOf(JSON.parse(agent.public_key) as Ed25519PublicJwk);

/**
 * A report an agent signed, checked in the order that names what is wrong:
 * the signature, then whose report it is, then its shape against the
 * schema from the contracts. Anything short of all three is refused.
 */
function signedReport<T extends TSchema>(what: string, schema: T, deviceId: string, key: KeyObject, jws: string): Static<T> {
  const verified = verifyJws(jws, key);
  if ('problem' in verified) throw new AgentProtocolError(`${what} signature does not verify`);
  const envelope = (typeof verified.payload === 'object' && verified.payload !== null ? verified.payload : {}) as { v?: unknown; deviceId?: unknown };
  if (envelope.v !== AGENT_PROTOCOL_VERSION || envelope.deviceId !== deviceId) throw new AgentProtocolError(`${what} is for another device`);
  const checked = checkValue(schema, verified.payload);
  if (!checked.ok) throw new AgentProtocolError(`${what} is malformed: ${checked.problem}`);
  return checked.value;
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

/**
 * Whether an upload is what the agent's investigation package is: a gzip
 * stream whose first block is a tar header. Only its first kilobytes are
 * inflated, a chunk at a time, so a hostile upload costs little to refuse.
 */
async function isTarGz(body: Buffer): Promise<boolean> {
  if (body.length < 20 || body[0] !== 0x1f || body[1] !== 0x8b) return false;
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of Readable.from([body.subarray(0, 4096)]).pipe(createGunzip({ finishFlush: zlib.Z_SYNC_FLUSH }))) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= 512) break;
    }
  } catch {
    return false;
  }
  return length >= 512 && Buffer.concat(chunks).subarray(257, 262).toString('latin1') === 'ustar';
}

/** A result or acknowledgement for an action that already moved on (a redelivery): nothing to do. */
function ignoreStale(error: unknown): void {
  if (error instanceof QuellError && error.code === 'action_state_conflict') return;
  throw error;
}
