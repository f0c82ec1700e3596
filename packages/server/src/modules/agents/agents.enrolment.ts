import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CreateEnrolmentTokenBody, EnrolBody, EnrolResponse } from '@quell/contracts';
import { type Actor, requirePermission, systemActor } from '../../actor.ts';
import type { AgentsTable, EnrolmentTokensTable } from '../../db/schema.ts';
import { QuellError } from '../../errors.ts';
import { applyGroupRules } from '../devices/group-rules.ts';
import type { AgentsServiceDeps } from './agents.core.ts';
import { presentEnrolmentToken } from './agents.presenter.ts';

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

const TOKEN_USED_UP = 'The enrolment token is used up: every one of its uses has enrolled an agent';

/** Enrolment tokens, and enrolling an agent with one. */
export function createAgentEnrolment(deps: AgentsServiceDeps) {
  const { store, repo, audit, signer, clock, ids } = deps;

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
        await repo.insertEnrolmentToken(trx, row);
        await audit.record(trx, actor, { kind: 'enrolment_token.create', targetType: 'enrolment_token', targetId: row.id, after: presentEnrolmentToken(row) });
      });
      return { token: presentEnrolmentToken(row), secret: `qe_${row.id}_${secret}` };
    },

    /** Every enrolment token, newest first; their secrets are never shown again. */
    async listEnrolmentTokens(actor: Actor) {
      requirePermission(actor, 'devices:manage');
      return (await repo.listEnrolmentTokens(store.db, 1000)).map(presentEnrolmentToken);
    },

    /** Revokes an enrolment token: no agent enrols with it any more; agents already enrolled stay. */
    async revokeEnrolmentToken(actor: Actor, id: string) {
      requirePermission(actor, 'devices:manage');
      return store.transaction(async (trx) => {
        const row = await repo.findEnrolmentToken(trx, id);
        if (!row) throw new QuellError('token_not_found', `No such enrolment token: ${id}`);
        if (row.revoked_at !== null) return presentEnrolmentToken(row);
        const revoked = { ...row, revoked_at: clock.now() };
        await repo.revokeEnrolmentToken(trx, id, revoked.revoked_at);
        await audit.record(trx, actor, { kind: 'enrolment_token.revoke', targetType: 'enrolment_token', targetId: id, before: presentEnrolmentToken(row), after: presentEnrolmentToken(revoked) });
        return presentEnrolmentToken(revoked);
      });
    },

    /** Registers a new agent: spends one use of the token, creates its device, and answers with the key to pin. */
    async enrol(body: EnrolBody, sourceIp: string | null): Promise<EnrolResponse> {
      const match = /^qe_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/.exec(body.token);
      const now = clock.now();
      const deviceId = await store.transaction(async (trx) => {
        const token = match ? await repo.findEnrolmentToken(trx, match[1]!) : undefined;
        const given = Buffer.from(sha256(match?.[2] ?? ''), 'hex');
        if (!token || !timingSafeEqual(Buffer.from(token.secret_hash, 'hex'), given)) throw new QuellError('enrolment_token_invalid');
        // Whoever holds the secret may learn why it no longer enrols; nobody else learns anything.
        if (token.revoked_at !== null) throw new QuellError('enrolment_token_invalid', 'The enrolment token was revoked');
        if (token.expires_at <= now) throw new QuellError('enrolment_token_invalid', 'The enrolment token has expired');
        if (token.uses_left <= 0) throw new QuellError('enrolment_token_invalid', TOKEN_USED_UP);
        // Spent in the database (see spendEnrolmentToken): the count read above may be stale already.
        if (!(await repo.spendEnrolmentToken(trx, token.id))) throw new QuellError('enrolment_token_invalid', TOKEN_USED_UP);
        // A host Quell learnt of from another engine's alerts, never enrolled: its agent takes that device over,
        // so its alerts, incidents and actions so far are the managed device's.
        const known = await repo.findDiscovered(trx, body.facts.hostname);
        const agentRow = (deviceId: string): AgentsTable => ({
          device_id: deviceId, public_key: JSON.stringify(body.publicKey), facts: JSON.stringify(body.facts), enrolled_at: now, revoked_at: null,
          state_version: null, state_error: null, state_failures: null, offboard_requested_at: null, offboard_release_effects: null, offboard_report: null, hits_seq: null,
        });
        // Two agents of that name enrolling at once: the first takes the device, the other gets one of its own.
        const tookOver = known !== undefined && await repo.insertUnlessTaken(trx, agentRow(known));
        let id: string;
        if (tookOver) {
          id = known;
          await repo.updateDevice(trx, id, { platform: body.facts.platform, last_seen_at: now });
        } else {
          id = ids.next();
          await repo.insertDevice(trx, { id, name: body.facts.hostname, platform: body.facts.platform, group_id: null, created_at: now, last_seen_at: now, group_pinned: 0 });
          await applyGroupRules(trx, [id]);
          await repo.insert(trx, agentRow(id));
        }
        await audit.record(trx, { ...systemActor(`enrolment:${token.name}`), sourceIp }, {
          kind: 'agent.enrol', targetType: 'device', targetId: id, after: { facts: body.facts, tokenId: token.id, ...(tookOver ? { tookOverDiscoveredDevice: true } : {}) },
        });
        return id;
      });
      return { deviceId, serverKey: signer.publicJwk, serverKeyId: signer.keyId };
    },
  };
}
