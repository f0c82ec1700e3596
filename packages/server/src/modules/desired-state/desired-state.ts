import { type ContainmentEntry, enforcedName } from '@quell/contracts';
import type { Db } from '../../db/store.ts';
import type { CommandSigner } from '../../command-signer.ts';
import { coversGroup } from '../indicators/indicators.repository.ts';
import { createDesiredStateRepository } from './desired-state.repository.ts';

const repo = createDesiredStateRepository();

/** The indicator actions an agent enforces as blocks. */
const BLOCKING = ['block', 'block_and_remediate'];

/**
 * Writes the next version of the desired state every agent enforces: the
 * containment list (the same for all) and the block, allow and audit indicators by file
 * hash and address (those of no group, plus each group's own), signed once per device group.
 * Called inside the transaction that changed a containment action or an
 * indicator; returns the new version.
 */
export async function writeDesiredState(trx: Db, signer: CommandSigner | undefined, now: number): Promise<number> {
  const version = await repo.nextVersion(trx, now);
  const containment = (await repo.containmentInForce(trx)).map((row): ContainmentEntry => {
    const mac = (JSON.parse(row.parameters) as { mac?: unknown }).mac;
    return { actionId: row.id, address: row.entity_name, ...(typeof mac === 'string' ? { mac } : {}) };
  });
  const indicators = await repo.enforcedIndicators(trx, now);
  for (const groupId of [null, ...await repo.groupIds(trx)]) {
    const inScope = indicators.filter((i) => coversGroup(i, groupId));
    const values = (types: readonly string[], actions: readonly string[]): string[] =>
      [...new Set(inScope.filter((i) => types.includes(i.type) && actions.includes(i.action)).map((i) => i.value))];
    const blocked = (type: string): string[] => values([type], BLOCKING);
    const antivirus = {
      blockSha256: blocked('sha256'), blockSha1: blocked('sha1'), blockMd5: blocked('md5'),
      remediate: values(['sha256', 'sha1', 'md5'], ['block_and_remediate']), audit: values(['sha256', 'sha1', 'md5'], ['audit']),
    };
    // An allowed address inside a blocked range stays reachable: the agent lets it through before any block.
    const network = { blockAddresses: blocked('ip'), allowAddresses: values(['ip'], ['allow']), auditAddresses: values(['ip'], ['audit']) };
    const names = (actions: readonly string[]): string[] => [...new Set(inScope.filter((i) => actions.includes(i.action)).flatMap((i) => enforcedName(i.type, i.value) ?? []))].sort();
    const dns = { block: names(BLOCKING), audit: names(['audit']), allow: names(['allow']) };
    const jws = signer ? signer.signState({ version, containment, antivirus, network, dns }, now) : null;
    await repo.save(trx, groupId, version, jws, now);
  }
  return version;
}

/** The signed desired state for agents of this device group (or of none), or null when there has never been any. */
export async function readDesiredState(db: Db, groupId: string | null): Promise<{ version: number; jws: string } | null> {
  const row = await repo.read(db, groupId);
  return row?.jws ? { version: row.version, jws: row.jws } : null;
}

/** When the fleet's desired state was last signed, or undefined before the first. */
export const desiredStateSignedAt = (db: Db): Promise<number | undefined> => repo.signedAt(db);

export interface Enforcement {
  succeeded: number;
  failed: number;
  waiting: number;
  waitingOnline: number;
  failures: Array<{ deviceId: string; deviceName: string; reason: string }>;
}

/**
 * Where a containment action (or its release) stands across the fleet, from
 * the state version each enrolled agent last reported: agents at or past the
 * action's version have applied it, unless they reported it failed.
 */
export async function enforcementOf(db: Db, action: { id: string; state_version: number | null }, onlineSince: number): Promise<Enforcement> {
  const version = action.state_version ?? Number.MAX_SAFE_INTEGER;
  const counts = await repo.enforcementCounts(db, version, action.id, onlineSince);
  const failures = counts.failed === 0 ? [] : await repo.enforcementFailures(db, version, action.id);
  return {
    succeeded: counts.reached - counts.failed,
    failed: counts.failed,
    waiting: counts.total - counts.reached,
    waitingOnline: counts.waitingOnline,
    failures: failures.map((row) => ({
      deviceId: row.device_id,
      deviceName: row.name,
      reason: row.state_error ?? (JSON.parse(row.state_failures ?? '{}') as Record<string, string>)[action.id] ?? 'unknown',
    })),
  };
}
