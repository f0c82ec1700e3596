import { createPrivateKey, type KeyObject } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import type { Platform } from '@quell/contracts';
import { publicKeyOf } from '@quell/contracts/jws';
import { type AgentContext, localCommand } from './agent-context.ts';
import { createAntivirusResponder } from './antivirus-responder.ts';
import { createCommandRunner } from './command-runner.ts';
import { type WorkFrame, openConnection } from './connection.ts';
import { type DriftTriggers, driftTriggers } from './drift-events.linux.ts';
import { type DriftReport, type DriftWatch, checkKey, watchDrift } from './drift-watch.ts';
import { linuxEnforcedEffects } from './enforced-effects.linux.ts';
import { containUser } from './executors/contain-user.linux.ts';
import { removeLeftovers } from './executors/quarantine.linux.ts';
import { type AgentIdentity, loadIdentity, serverUrlsOf } from './identity.ts';
import { type HitReporter, createHitReporter } from './indicator-hits.ts';
import { Journal } from './journal.ts';
import { type AgentLog, jsonLog } from './log.ts';
import { offboardEndpoint } from './offboard.linux.ts';
import { Refusal, signDrift, signIndicatorHits, signOffboarded, signStateReport, verifyOffboard } from './protocol.ts';
import { type CommandRunner, systemRunner } from './runner.ts';
import { createStateEnforcer } from './state-enforcer.ts';
import { uploadPackage } from './transport.ts';

export type { AgentLog } from './log.ts';

export interface AgentOptions {
  dir: string;
  platform?: Platform;
  runner?: CommandRunner;
  log?: AgentLog;
  /** Clock skew tolerated on a command's issued-at, in seconds. */
  maxSkewSeconds?: number;
  /** Folders the antivirus watches for new files (Linux); none unless given. */
  watch?: readonly string[];
  /** Paths whose mounts the exec permission check guards (Linux): executions of blocked files there are refused. None unless given. */
  execGuard?: readonly string[];
  /** How often what the agent enforces is checked and re-applied if something lifted it when no event asks, in milliseconds. */
  driftCheckMs?: number;
  /** Called once the agent has offboarded itself (released, reported, identity removed): it runs no more. */
  onOffboarded?: () => void;
}

export interface RunningAgent {
  deviceId: string;
  /** Resolves once connected and welcomed (again after each reconnect). */
  connected(): Promise<void>;
  stop(): Promise<void>;
}

/** How often the effects in force are checked (firewall tables, mount options) when no event asks, in seconds. */
export const DEFAULT_DRIFT_CHECK_SECONDS = 3;

/** `--drift-check-seconds` as milliseconds: a whole number of seconds from 1 to 3600. */
export function driftCheckMs(seconds: string): number {
  const value = Number(seconds);
  if (!Number.isInteger(value) || value < 1 || value > 3600) throw new Error(`--drift-check-seconds takes a whole number of seconds from 1 to 3600, not ${seconds}`);
  return value * 1000;
}
/** How often indicator hits are reported, in milliseconds. */
const HITS_REPORT_MS = 1000;
/** Drift reports kept while the server is out of reach; the oldest go first. */
const MAX_HELD_DRIFT = 100;

/**
 * The endpoint agent: dials the server, proves who it is, and carries out
 * each signed command for this device exactly once, reporting signed results;
 * enforces the fleet's desired state; keeps what it put in force true; and
 * answers malware on its own. It reconnects on its own, with backoff, for as
 * long as it runs. Each of these is its own part; this puts them together.
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const identity: AgentIdentity = loadIdentity(options.dir);
  const log = options.log ?? jsonLog;
  const runner = options.runner ?? systemRunner;
  const platform = options.platform ?? 'linux';
  const journal = new Journal(options.dir, { warn: (message, fields) => log.warn(message, fields) });
  if (journal.damagedCount > 0) log.warn('journal entries damaged', { count: journal.damagedCount, damaged: journal.damaged });
  removeInterruptedLeftovers(options.dir, journal, log);
  const privateKey: KeyObject = createPrivateKey(identity.privateKeyPem);
  const serverKey = publicKeyOf(identity.serverKey);
  // Every replica's addresses stay reachable through an isolation: the agent may be sent to any of them.
  const serverAddresses = [...new Set((await Promise.all(serverUrlsOf(identity).map((url) => resolveAll(new URL(url).hostname)))).flat())];
  const common: AgentContext = { deviceId: identity.deviceId, platform, runner, agentDir: options.dir, serverAddresses, journal, log };

  /** Work started by frames (commands), settled before the agent stops. */
  const running = new Set<Promise<void>>();
  /** Drift reports made while the server was out of reach, sent when it is back. */
  const heldDrift: string[] = [];
  let driftWatch: DriftWatch | null = null;
  /** The kernel's events that start a drift check at once. */
  let driftEvents: DriftTriggers | null = null;
  let offboarding = false;

  const connection = openConnection({ identity, privateKey, log, onFrame, onWelcome });
  /** Indicators that matched here, reported signed until the server has counted them. */
  const hits: HitReporter = createHitReporter({
    sign: (seq, list) => signIndicatorHits(privateKey, identity.deviceId, seq, list),
    send: (jws) => connection.welcomed() && connection.send({ t: 'hits', jws }),
    intervalMs: HITS_REPORT_MS,
  });
  const antivirus = createAntivirusResponder({
    ...common, privateKey, hits, send: connection.send, lists: () => state.lists(),
  });
  const state = createStateEnforcer({
    ...common, serverKey, hits, onHashListsChanged: (grew) => antivirus.hashListsChanged(grew),
  });
  const commands = createCommandRunner({
    ...common, privateKey, serverKey, maxSkewSeconds: options.maxSkewSeconds ?? 300,
    send: connection.send, isOpen: connection.isOpen, blockHashes: () => state.lists().blocked, driftWatch: () => driftWatch,
    upload: (actionId, bytes) => uploadPackage({ serverUrl: connection.serverUrl, deviceId: identity.deviceId, privateKey, pin: identity.serverCert }, actionId, bytes),
  });

  /** Once welcomed: what the agent did while the server was out of reach, or before it answered. */
  function onWelcome(): void {
    for (const report of journal.unacknowledgedReports()) connection.send({ t: 'local_action', jws: report });
    for (const jws of heldDrift.splice(0)) connection.send({ t: 'drift', jws });
    hits.flush({ resend: true });
  }

  function onFrame(frame: WorkFrame): void {
    const refuse = (context: string, error: unknown, actionId: string | null = null): void => {
      const reason = (error as Error).message;
      log.warn(context, { actionId, reason });
      connection.send({ t: 'rejected', actionId, reason });
    };
    switch (frame.t) {
      case 'local_ack':
        journal.acknowledgeLocal(String(frame.actionId));
        return;
      case 'result_ack':
        journal.acknowledgeResult(String(frame.actionId));
        return;
      case 'hits_ack':
        hits.acknowledged(Number(frame.seq));
        return;
      case 'command': {
        const work = commands.execute(String(frame.jws)).catch((error: unknown) => {
          const refusal = error instanceof Refusal ? error : new Refusal(null, (error as Error).message);
          refuse('command refused', refusal, refusal.actionId);
        });
        running.add(work);
        void work.finally(() => running.delete(work));
        return;
      }
      case 'state': {
        const jws = String(frame.jws);
        // The drift watch does not judge the state's tables while it replaces them (see stateApplications), and is not held up by it.
        void state.inOrder(() => onState(jws)).catch((error: unknown) => refuse('desired state refused', error));
        return;
      }
      case 'offboard': {
        const jws = String(frame.jws);
        void offboard(jws).catch((error: unknown) => refuse('offboarding refused', error));
        return;
      }
      case 'refused':
        log.warn('server refused the connection', { reason: frame.reason });
        return;
      default:
        log.warn('server sent a frame that is not part of the protocol', { t: String((frame as { t?: unknown }).t) });
    }
  }

  async function onState(jws: string): Promise<void> {
    const { version, outcome } = await state.apply(jws);
    log.info('containment state applied', { version, failures: outcome.failures, error: outcome.error });
    // The drift watch takes what was just applied as its reference now, not at its next tick.
    void driftWatch?.checkNow();
    connection.send({ t: 'state_applied', jws: signStateReport(privateKey, identity.deviceId, version, outcome) });
  }

  /**
   * The server offboards this device: nothing else runs from here on. What
   * Quell put in force is released (unless the server said to keep it), the
   * vault is left with instructions, the identity removed, and the signed
   * report sent before the agent stops for good.
   */
  async function offboard(jws: string): Promise<void> {
    const order = verifyOffboard(jws, serverKey, identity.deviceId, options.maxSkewSeconds ?? 300);
    if (offboarding) return;
    offboarding = true;
    commands.refuseAll();
    log.warn('offboarding', { releaseEffects: order.releaseEffects });
    driftWatch?.close();
    driftEvents?.close();
    antivirus.close();
    hits.close();
    await Promise.allSettled(running);
    await state.stop({ removeRedirect: false });
    const report = await offboardEndpoint({ runner, agentDir: options.dir, deviceId: identity.deviceId, journal, releaseEffects: order.releaseEffects });
    log.warn('offboarded', { ...report });
    await connection.sendAndWait({ t: 'offboarded', jws: signOffboarded(privateKey, { deviceId: identity.deviceId, ...report }) });
    connection.close();
    journal.close();
    options.onOffboarded?.();
  }

  /** An effect found lifted and put back (or not): said in the log and reported, signed, now or once the server is back. */
  function onDrift(report: DriftReport): void {
    const fields = { effect: report.effect, actionIds: report.actionIds, found: report.found, error: report.error };
    if (report.repaired) log.warn('effect re-applied after tampering', fields);
    else log.warn('effect found lifted and could not be re-applied', fields);
    // Only what actions put in force is reported (address blocks are the desired state's): the log says the rest.
    if (report.actionIds.length === 0) return;
    const jws = signDrift(privateKey, { deviceId: identity.deviceId, ...report });
    if (!connection.send({ t: 'drift', jws }) && heldDrift.push(jws) > MAX_HELD_DRIFT) heldDrift.shift();
  }

  await state.restore();
  if (platform === 'linux') {
    driftEvents = driftTriggers((keys) => void driftWatch?.checkNow(keys), (source, error) => log.warn('drift events unavailable: the periodic check covers them', { source, error: error.message }));
    driftWatch = watchDrift({
      effects: linuxEnforcedEffects({
        runner, journal, restrict: async (actionId) => void (await state.restrictAgain(actionId)),
        async containAgain(actionId, name) {
          await containUser({
            command: localCommand(identity.deviceId, { actionId, type: 'contain_user', entity: { name }, parameters: { allowSystemAccount: true }, nonce: 'desired-state' }),
            runner, agentDir: options.dir, serverAddresses, priorSnapshot: undefined, upload: async () => {},
          });
        },
        addressBlocks: { inForce: state.blockingHere, version: () => state.stateVersion() },
        containment: { actionIds: state.containedHere, reapply: state.reapplyStored },
        stateApplications: state.applications,
      }),
      intervalMs: options.driftCheckMs ?? DEFAULT_DRIFT_CHECK_SECONDS * 1000,
      onDrift,
      onError: (effect, error) => log.warn('could not check an effect in force', { effect, error: error.message }),
      onRound: (checks) => driftEvents?.follow(checks.flatMap((c) => (c.signals ? [{ key: checkKey(c), signals: c.signals }] : []))),
    });
    // At once: the reference of what is in force is taken, and its events followed, from the start.
    void driftWatch.checkNow();
    await antivirus.start({ folders: options.watch ?? [], execPaths: options.execGuard ?? [] });
  }
  connection.start();
  return {
    deviceId: identity.deviceId,
    connected: connection.connected,
    async stop() {
      antivirus.close();
      hits.close();
      driftWatch?.close();
      driftEvents?.close();
      await state.stop({ removeRedirect: true }).catch((error: unknown) => log.warn('could not stop enforcing the desired state', { error: (error as Error).message }));
      connection.close();
      await Promise.allSettled(running);
      if (!offboarding) journal.close();
    },
  };
}

/**
 * Temporary files that a quarantine or restore killed mid-way left behind
 * (never the only copy of a file): removed before anything else runs. The
 * actions themselves are reported as interrupted when the server asks.
 */
function removeInterruptedLeftovers(agentDir: string, journal: Journal, log: AgentLog): void {
  const restores = journal.unfinished().flatMap(({ actionId, type, undoOf }) => {
    const path = type === 'restore_file' && undoOf ? (journal.snapshotOf(undoOf) as { path?: unknown } | undefined)?.path : undefined;
    return typeof path === 'string' ? [{ actionId, path }] : [];
  });
  try {
    const removed = removeLeftovers({ agentDir }, restores);
    if (removed.length > 0) log.warn('removed what interrupted actions left behind', { removed });
  } catch (error) {
    log.warn('could not remove what interrupted actions left behind', { error: (error as Error).message });
  }
}

async function resolveAll(hostname: string): Promise<string[]> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  try {
    return [...new Set((await lookup(bare, { all: true })).map((a) => a.address))];
  } catch {
    return [];
  }
}
