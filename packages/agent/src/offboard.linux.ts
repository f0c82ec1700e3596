import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandPayload, OffboardedPayload } from '@quell/contracts';
import { localCommand } from './agent-context.ts';
import { applyAddressBlocks } from './executors/address-blocks.linux.ts';
import { applyContainment } from './executors/containment.linux.ts';
import { type ContainUserSnapshot, releaseUser } from './executors/contain-user.linux.ts';
import type { Executor } from './executors/executor.ts';
import { releaseIsolation } from './executors/isolation.linux.ts';
import { vaultPath } from './executors/quarantine.linux.ts';
import { removeCodeRestriction } from './executors/restrict-code.linux.ts';
import type { Journal } from './journal.ts';
import type { CommandRunner } from './runner.ts';

/** Left in the agent's folder once it has offboarded: the agent will not run again without a new enrolment. */
export const OFFBOARDED_MARKER = 'offboarded.json';
/** How an offboarded agent ends, so that its service manager does not start it again (`RestartPreventExitStatus=78` in the unit). */
export const OFFBOARDED_EXIT_CODE = 78;

/** An offboarded agent says so and ends with OFFBOARDED_EXIT_CODE instead of starting: enrol it again to manage the device. */
export function exitIfOffboarded(agentDir: string): void {
  const marker = join(agentDir, OFFBOARDED_MARKER);
  if (!existsSync(marker) || existsSync(join(agentDir, 'identity.json'))) return;
  const { at } = JSON.parse(readFileSync(marker, 'utf8')) as { at?: string };
  process.stderr.write(`This device was offboarded from Quell${at ? ` at ${at}` : ''}; see ${marker}. Enrol it again (quell-agent enrol) to manage it.\n`);
  process.exit(OFFBOARDED_EXIT_CODE);
}

type Report = Pick<OffboardedPayload, 'released' | 'kept' | 'failures' | 'vault'>;

/**
 * What an agent does when its server offboards it: releases what Quell put
 * in force (isolation, code restriction, contained users, containment) —
 * or, when asked to, leaves it and says so — leaves the quarantined files in
 * the vault with a README saying where each came from and how to put it
 * back, and removes its identity (key and pinned server), so nothing signed
 * by that server is obeyed again. The journal and vault stay for the
 * administrator.
 */
export async function offboardEndpoint(deps: {
  runner: CommandRunner;
  agentDir: string;
  deviceId: string;
  journal: Pick<Journal, 'inForce' | 'allInForce'>;
  releaseEffects: boolean;
}): Promise<Report> {
  const report: Report = { released: [], kept: [], failures: [], vault: { files: 0, instructions: null } };
  /** Runs the undo executor of an effect in force, from the snapshot its action left, as an undo command would. */
  async function undo(executor: Executor, type: CommandPayload['type'], original: { actionId: string; snapshot: unknown }, entity: string, what: string): Promise<void> {
    if (!deps.releaseEffects) return void report.kept.push(what);
    try {
      await executor({
        command: localCommand(deps.deviceId, { actionId: original.actionId, type, entity: { name: entity }, parameters: {}, undoOf: original.actionId, nonce: 'offboarding' }),
        runner: deps.runner, agentDir: deps.agentDir, serverAddresses: [], priorSnapshot: original.snapshot, upload: async () => {},
      });
      report.released.push(what);
    } catch (error) {
      report.failures.push(`${what}: ${(error as Error).message}`);
    }
  }

  const isolation = deps.journal.inForce('isolate_device', 'release_isolation');
  if (isolation) await undo(releaseIsolation, 'release_isolation', isolation, 'device', `isolation (action ${isolation.actionId})`);
  const restriction = deps.journal.inForce('restrict_code_execution', 'remove_code_restriction');
  if (restriction) await undo(removeCodeRestriction, 'remove_code_restriction', restriction, 'device', `code restriction (action ${restriction.actionId})`);
  for (const contained of deps.journal.allInForce('contain_user', 'release_user')) {
    const name = (contained.snapshot as ContainUserSnapshot | undefined)?.name ?? 'unknown';
    await undo(releaseUser, 'release_user', contained, name, `containment of user ${name} (action ${contained.actionId})`);
  }
  if (deps.releaseEffects) {
    const outcome = await applyContainment(deps.runner, [], { own: [], server: [] });
    if (outcome.error) report.failures.push(`containment of other devices: ${outcome.error}`);
    else report.released.push('containment of other devices (this device no longer enforces it)');
  } else {
    report.kept.push('containment of other devices (this device goes on dropping their traffic until its rules are removed)');
  }

  // Indicators are the server's word, not actions of this device: once it is no longer managed, none is enforced, nor its DNS filtered.
  const lifted = await applyAddressBlocks(deps.runner, { block: [], audit: [] }, []);
  if (lifted) report.failures.push(`indicators (address blocks and the DNS redirect): ${lifted}`);
  else report.released.push('indicators (address blocks and the DNS redirect)');

  const quarantined = [...deps.journal.allInForce('quarantine_file', 'restore_file'), ...deps.journal.allInForce('stop_and_quarantine_file', 'restore_file')]
    .flatMap(({ actionId, snapshot }) => (isVaultRecord(snapshot) && existsSync(snapshot.vaultFile) ? [{ actionId, ...snapshot }] : []));
  report.vault.files = quarantined.length;
  if (quarantined.length > 0) {
    const readme = join(vaultPath(deps.agentDir), 'README.txt');
    writeFileSync(readme, vaultReadme(quarantined), { mode: 0o600 });
    report.vault.instructions = readme;
  }

  for (const file of ['identity.json', 'desired-state.json', 'watermark.json']) rmSync(join(deps.agentDir, file), { force: true });
  writeFileSync(join(deps.agentDir, OFFBOARDED_MARKER), `${JSON.stringify({ at: new Date().toISOString(), deviceId: deps.deviceId, ...report }, null, 2)}\n`, { mode: 0o600 });
  return report;
}

interface VaultRecord { path: string; vaultFile: string; sha256: string; mode: number; uid: number; gid: number }

function isVaultRecord(value: unknown): value is VaultRecord {
  const r = value as Partial<VaultRecord> | undefined;
  return typeof r?.path === 'string' && typeof r.vaultFile === 'string' && typeof r.sha256 === 'string' && typeof r.mode === 'number' && typeof r.uid === 'number' && typeof r.gid === 'number';
}

/** What the administrator needs to put a quarantined file back by hand, or to delete it knowingly. */
function vaultReadme(files: ReadonlyArray<VaultRecord & { actionId: string }>): string {
  const quote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;
  return [
    'This device was offboarded from Quell. The files below were quarantined by it and are still in this',
    'folder, unreadable (mode 000). Each can be put back exactly with the command under it, or deleted.',
    'Check the SHA-256 first: these files were judged malicious or suspicious.',
    '',
    ...files.flatMap((f) => [
      `${f.vaultFile}`,
      `  was ${f.path} (SHA-256 ${f.sha256}, mode ${f.mode.toString(8)}, owner ${f.uid}:${f.gid}; action ${f.actionId})`,
      `  install -m ${f.mode.toString(8)} -o ${f.uid} -g ${f.gid} ${quote(f.vaultFile)} ${quote(f.path)}`,
      '',
    ]),
  ].join('\n');
}
