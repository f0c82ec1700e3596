import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip, constants as zlib } from 'node:zlib';
import { DELIVERABLE_STATUSES, isStatusIn, packageUploadMessage } from '@quell/contracts';
import { verifyMessage } from '@quell/contracts/jws';
import { type Actor, inScope, requirePermission } from '../../actor.ts';
import { QuellError } from '../../errors.ts';
import { type AgentsServiceDeps, agentActor, ignoreStale, keyOf } from './agents.core.ts';

/** Investigation packages: uploaded by the agent that collected one, downloaded by people allowed to read them. */
export function createAgentPackages(deps: AgentsServiceDeps) {
  const { store, repo, actions, actionsRepo, audit, packagesDir } = deps;
  const packageFile = (actionId: string): string => join(packagesDir, `${actionId}.tar.gz`);

  return {
    /**
     * Stores the investigation package an agent collected, once: the upload
     * must be signed by the enrolled key of the action's own device, for a
     * collect action delivered (or on its way) and not ended. The same
     * package sent again is accepted and kept as it was; another is refused.
     */
    async storePackage(actionId: string, deviceId: string, signature: string, body: Buffer): Promise<{ sha256: string; bytes: number }> {
      const agent = await repo.findActive(store.db, deviceId);
      const row = await actionsRepo.findById(store.db, actionId);
      const sha256 = createHash('sha256').update(body).digest('hex');
      if (!agent || !row || row.device_id !== deviceId || !verifyMessage(keyOf(agent), packageUploadMessage(actionId, deviceId, sha256), signature)) {
        throw new QuellError('agent_signature_invalid');
      }
      if (row.type !== 'collect_investigation_package' || !isStatusIn(DELIVERABLE_STATUSES, row.status)) throw new QuellError('package_not_expected');
      // The same bytes again: an agent whose first upload's answer was lost (its replica died) tries again, and is told it is kept.
      if (existsSync(packageFile(actionId))) {
        if (createHash('sha256').update(readFileSync(packageFile(actionId))).digest('hex') === sha256) return { sha256, bytes: body.length };
        throw new QuellError('package_not_expected');
      }
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
  };
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
