import { type KeyObject, randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import type { AgentFrame } from '@quell/contracts';
import { type AgentContext, localCommand } from './agent-context.ts';
import { type MalwareWatch, watchForMalware } from './antivirus-watch.ts';
import { type ExecGuard, type RefusedExecution, execGuardHelper, startExecGuard } from './exec-guard.linux.ts';
import type { Detection, ScanFinding } from './executors/antivirus-scan.linux.ts';
import { quarantineFile } from './executors/quarantine.linux.ts';
import { guardsFor } from './guards.linux.ts';
import type { HitReporter } from './indicator-hits.ts';
import { signLocalAction } from './protocol.ts';
import type { HashLists } from './state-enforcer.ts';

export interface AntivirusResponderDeps extends AgentContext {
  privateKey: KeyObject;
  hits: HitReporter;
  send(frame: AgentFrame): boolean;
  /** The hash lists of the state in force. */
  lists(): HashLists;
}

/**
 * What the agent does on its own when malware shows up: the on-access
 * antivirus in watched folders and the exec guard on execution. Malware is
 * quarantined at once, exactly once (the journal), and the action reported
 * signed; a file an audit or block indicator names is reported as a hit.
 */
export function createAntivirusResponder(deps: AntivirusResponderDeps) {
  const { journal, log, hits } = deps;
  let malwareWatch: MalwareWatch | null = null;
  let execGuard: ExecGuard | null = null;

  /** What the on-access antivirus found: a file an audit indicator names is reported; malware is quarantined. */
  async function onDetection(detection: Detection): Promise<void> {
    const now = Date.now();
    if (detection.kind === 'audit') {
      log.info('antivirus saw a file an audit indicator names', { path: detection.path, sha256: detection.sha256 });
      hits.add({ value: detection.indicator, action: 'audit', path: detection.path, sha256: detection.sha256, count: 1, firstAt: now, lastAt: now });
      return;
    }
    const { finding } = detection;
    if (detection.indicator !== undefined) hits.add({ value: detection.indicator, action: 'block', path: finding.path, sha256: finding.sha256, quarantined: true, count: 1, firstAt: now, lastAt: now });
    await quarantineOnSight(finding);
  }

  /**
   * The exec guard refused to run a file: reported as a hit on its block
   * indicator. Malware by a built-in signature, or a file whose indicator
   * blocks and remediates, is quarantined like the antivirus does; a file a
   * block indicator only blocks stays where it is (the hit raises the alert).
   */
  async function onRefusedExecution({ detection, pid, process: name }: RefusedExecution): Promise<void> {
    const { finding } = detection;
    const quarantined = detection.indicator === undefined || deps.lists().remediated.has(detection.indicator);
    log.warn('execution refused', { path: finding.path, sha256: finding.sha256, signature: finding.signature, pid, process: name, quarantined });
    const now = Date.now();
    if (detection.indicator !== undefined) {
      hits.add({ value: detection.indicator, action: 'block', path: finding.path, sha256: finding.sha256, quarantined, process: { pid, name: name.slice(0, 1024) }, count: 1, firstAt: now, lastAt: now });
    }
    if (quarantined) await quarantineOnSight(finding);
  }

  /** Quarantines what the antivirus found, at once and exactly once, and reports the action, signed, until the server has it. */
  async function quarantineOnSight(finding: ScanFinding): Promise<void> {
    if (journal.restoredFile(finding.path, finding.sha256)) {
      log.info('antivirus left alone a file an analyst restored', { path: finding.path, sha256: finding.sha256, signature: finding.signature });
      return;
    }
    const actionId = randomUUID();
    const entity = { name: basename(finding.path), path: finding.path, sha256: finding.sha256 };
    const command = localCommand(deps.deviceId, { actionId, type: 'quarantine_file', entity, parameters: {}, nonce: `antivirus-${actionId}` });
    journal.start(actionId, command.nonce, command.iat, command.type, null, null);
    let output: string;
    try {
      const result = await quarantineFile({ command, runner: deps.runner, agentDir: deps.agentDir, serverAddresses: deps.serverAddresses, priorSnapshot: undefined, upload: async () => {} });
      journal.finish(actionId, { outcome: 'completed', output: result.output, snapshot: result.snapshot });
      output = result.output;
    } catch (error) {
      journal.finish(actionId, { outcome: 'failed', error: (error as Error).message });
      log.warn('antivirus could not quarantine', { path: finding.path, signature: finding.signature, error: (error as Error).message });
      return;
    }
    log.info('antivirus quarantined a file', { actionId, path: finding.path, sha256: finding.sha256, signature: finding.signature });
    const report = signLocalAction(deps.privateKey, { deviceId: deps.deviceId, actionId, type: 'quarantine_file', entity, detection: finding.signature, output, at: Date.now() });
    journal.reportLocal(actionId, report);
    deps.send({ t: 'local_action', jws: report });
  }

  return {
    /** Starts watching `folders` for new files, and guarding executions under `execPaths` (Linux). */
    async start(options: { folders: readonly string[]; execPaths: readonly string[] }): Promise<void> {
      if (options.folders.length > 0) {
        malwareWatch = watchForMalware({
          folders: options.folders,
          lists: () => deps.lists(),
          onDetection,
          onError: (path, error) => log.warn('antivirus could not examine a file', { path, error: error.message }),
        });
        log.info('antivirus watching', { folders: options.folders });
        void malwareWatch.sweep();
      }
      if (options.execPaths.length === 0) return;
      const helper = execGuardHelper();
      if (helper === null) {
        log.warn('exec guard unavailable: its helper was not built with the agent (a C compiler is needed)');
        return;
      }
      try {
        // The same guards as a quarantine's, read afresh for each refusal: what the agent would never quarantine, it never stops from running.
        const guards = () => guardsFor({
          command: localCommand(deps.deviceId, { actionId: randomUUID(), type: 'quarantine_file', entity: { name: 'exec guard' }, parameters: {}, nonce: 'exec-guard' }),
          runner: deps.runner, agentDir: deps.agentDir, serverAddresses: deps.serverAddresses, priorSnapshot: undefined, upload: async () => {},
        });
        execGuard = await startExecGuard({
          helper, paths: options.execPaths, blocked: () => deps.lists().blocked, spared: (path, id) => guards().file(path, id),
          onSpared: (path, reason) => log.warn('a blocked file was let run: refusing it would harm the device', { path, reason }),
          onRefused: (refused) => void onRefusedExecution(refused),
          onError: (error) => log.warn('exec guard', { error: error.message }),
        });
        log.info('exec guard on', { paths: options.execPaths });
      } catch (error) {
        log.warn('exec guard unavailable', { error: (error as Error).message });
      }
    },

    /** The hash lists changed: verdicts given against the old ones are forgotten, and files already in watched folders are looked at again if the lists grew. */
    hashListsChanged(grew: boolean): void {
      execGuard?.listsChanged();
      if (grew) void malwareWatch?.sweep();
    },

    close(): void {
      malwareWatch?.close();
      execGuard?.close();
    },
  };
}
