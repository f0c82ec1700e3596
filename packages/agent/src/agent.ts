import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { basename } from 'node:path';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { AGENT_MAX_FRAME_BYTES, API_PATHS, type AgentFrame, type CommandPayload, EFFECT_CHANGING_ACTION_TYPES, type IndicatorHit, type Platform, type ServerFrame } from '@quell/contracts';
import { type MalwareWatch, watchForMalware } from './antivirus-watch.ts';
import type { Detection, ScanFinding } from './executors/antivirus-scan.linux.ts';
import { quarantineFile, removeLeftovers } from './executors/quarantine.linux.ts';
import { importJWK } from 'jose';
import WebSocket from 'ws';
import { type ExecutionResult } from './executors/executor.ts';
import { executorFor } from './executors/registry.ts';
import { type ContainmentOutcome, applyContainment } from './executors/containment.linux.ts';
import { applyAddressBlocks, blockResolvedAddresses, unblockResolvedAddress } from './executors/address-blocks.linux.ts';
import { reapplyIsolation } from './executors/isolation.linux.ts';
import { loadState, saveState } from './desired-state.ts';
import { restrictCodeExecution } from './executors/restrict-code.linux.ts';
import { containUser } from './executors/contain-user.linux.ts';
import { type AgentIdentity, loadIdentity } from './identity.ts';
import { Journal, type Outcome } from './journal.ts';
import { Lane } from './lanes.ts';
import { type DriftTriggers, driftTriggers } from './drift-events.linux.ts';
import { type DriftReport, type DriftWatch, checkKey, watchDrift } from './drift-watch.ts';
import { linuxEnforcedEffects } from './enforced-effects.linux.ts';
import { Refusal, helloSignature, signDrift, signIndicatorHits, signLocalAction, signOffboarded, signResult, signStateReport, verifyCommand, verifyOffboard, verifyState } from './protocol.ts';
import { offboardEndpoint } from './offboard.linux.ts';
import { type HitReporter, createHitReporter, socketOwner, watchAddressHits } from './indicator-hits.ts';
import { type DnsFilter, type DnsLists, cachedResolvers, lookupAddresses, startDnsFilter } from './dns-filter.ts';
import { createResolvedBlocks } from './resolved-blocks.ts';
import { type ExecGuard, type RefusedExecution, execGuardHelper, startExecGuard } from './exec-guard.linux.ts';
import { guardsFor } from './guards.linux.ts';
import { type CommandRunner, systemRunner } from './runner.ts';
import { pinnedTls, uploadPackage as uploadSignedPackage } from './transport.ts';

export interface AgentLog {
  info(message: string, fields?: object): void;
  warn(message: string, fields?: object): void;
}

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

/** How many commands run at once; the long ones (scans, packages, evidence) have their own, smaller lane. */
/** The key in a state report's failures under which address blocks that could not be applied are reported (containment's are action ids). */
const ADDRESS_BLOCKS_FAILURE = 'address_blocks';
/** Likewise for domain and URL indicators the DNS filter could not enforce. */
const DNS_FAILURE = 'dns';
const COMMAND_SLOTS = 4;
const HEAVY_COMMAND_SLOTS = 2;
const HEAVY_TYPES: ReadonlySet<string> = new Set(['run_antivirus_scan', 'collect_investigation_package', 'collect_evidence']);
/** How often the effects in force are checked (firewall tables, mount options) when no event asks, in seconds. */
export const DEFAULT_DRIFT_CHECK_SECONDS = 3;

/** `--drift-check-seconds` as milliseconds: a whole number of seconds from 1 to 3600. */
export function driftCheckMs(seconds: string): number {
  const value = Number(seconds);
  if (!Number.isInteger(value) || value < 1 || value > 3600) throw new Error(`--drift-check-seconds takes a whole number of seconds from 1 to 3600, not ${seconds}`);
  return value * 1000;
}
/** How often the agent's address table is read for hits, and hits are reported, in milliseconds. */
const ADDRESS_HITS_CHECK_MS = 5000;
const HITS_REPORT_MS = 1000;
/** Drift reports kept while the server is out of reach; the oldest go first. */
const MAX_HELD_DRIFT = 100;
/** Beyond this many commands waiting, new ones are refused rather than held in memory. */
const MAX_WAITING_COMMANDS = 256;

const jsonLog: AgentLog = {
  info: (msg, fields) => process.stdout.write(JSON.stringify({ level: 'info', time: Date.now(), msg, ...fields }) + '\n'),
  warn: (msg, fields) => process.stdout.write(JSON.stringify({ level: 'warn', time: Date.now(), msg, ...fields }) + '\n'),
};

/**
 * The endpoint agent: dials the server, proves who it is, and carries out
 * each signed command for this device exactly once, reporting signed results.
 * It reconnects on its own, with backoff, for as long as it runs.
 */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const identity: AgentIdentity = loadIdentity(options.dir);
  const log = options.log ?? jsonLog;
  const runner = options.runner ?? systemRunner;
  const platform = options.platform ?? 'linux';
  const maxSkew = options.maxSkewSeconds ?? 300;
  const journal = new Journal(options.dir, { warn: (message, fields) => log.warn(message, fields) });
  if (journal.damagedCount > 0) log.warn('journal entries damaged', { count: journal.damagedCount, damaged: journal.damaged });
  removeInterruptedLeftovers(options.dir, journal, log);
  const privateKey: KeyObject = createPrivateKey(identity.privateKeyPem);
  const serverKey = await importJWK(identity.serverKey, 'EdDSA');
  const serverUrl = new URL(identity.serverUrl);
  const serverAddresses = await resolveAll(serverUrl.hostname);

  let socket: WebSocket | null = null;
  let stopping = false;
  let backoffMs = 500;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let onWelcome: Array<() => void> = [];
  let welcomed = false;
  const running = new Set<Promise<void>>();
  /** Desired states are applied one after another, in the order they arrive. */
  let stateWork: Promise<void> = Promise.resolve();
  /** The block and audit indicators by hash of the last desired state applied, for the antivirus. */
  let blocked: ReadonlySet<string> = new Set();
  let audited: ReadonlySet<string> = new Set();
  /** Blocked hashes whose indicators also remediate: a file refused at execution is quarantined too. */
  let remediated: ReadonlySet<string> = new Set();
  /** The address block and audit entries of the last desired state applied, to tell which one traffic matched. */
  let addressEntries: { block: readonly string[]; audit: readonly string[] } = { block: [], audit: [] };
  /** The domain entries of the last desired state applied, and the filter that enforces them while there are any. */
  let dnsLists: DnsLists = { block: new Set(), audit: new Set(), allow: new Set() };
  let dnsFilter: DnsFilter | null = null;
  /** What the address table lets through whatever blocks it holds: the server, and allowed addresses. */
  let keptAddresses: readonly string[] = [];
  const resolvers = cachedResolvers();
  const resolvedBlocks = createResolvedBlocks({
    lookup: async (name) => lookupAddresses(name, await resolvers()),
    spared: async () => [...(await resolvers()), ...ownAddresses()],
    block: (addresses) => blockResolvedAddresses(runner, addresses),
    unblock: (address) => unblockResolvedAddress(runner, address),
    onProblem: (problem) => log.warn('could not block the addresses of a blocked name', { error: problem }),
  });
  let malwareWatch: MalwareWatch | null = null;
  let execGuard: ExecGuard | null = null;
  let verifying: Promise<unknown> = Promise.resolve();
  /** Set once the server has offboarded this device: no command runs any more. */
  let offboarding = false;
  /** The containment actions this agent enforces now (from the last state applied), for the drift watch. */
  let containedHere: string[] = [];
  /** Whether address block indicators are in force in the agent's table (drift keeps them so). */
  let blockingHere = false;
  let driftWatch: DriftWatch | null = null;
  /** The kernel's events that start a drift check at once. */
  let driftEvents: DriftTriggers | null = null;
  /** Drift reports made while the server was out of reach, sent when it is back. */
  const heldDrift: string[] = [];
  /** Commands accepted and waiting for a free slot in their lane. */
  const waiting = new Set<string>();
  const lane = new Lane(COMMAND_SLOTS);
  const heavyLane = new Lane(HEAVY_COMMAND_SLOTS);
  /** Each action being carried out, settled when it has finished. */
  const finishing = new Map<string, Promise<void>>();
  /** Actions this process is carrying out right now (journal started, not yet finished). */
  const inFlight = new Set<string>();

  const send = (frame: AgentFrame): boolean => {
    if (socket?.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  };
  /** Indicators that matched here, reported signed until the server has counted them. */
  const hits: HitReporter = createHitReporter({
    sign: (seq, list) => signIndicatorHits(privateKey, identity.deviceId, seq, list),
    send: (jws) => welcomed && send({ t: 'hits', jws }),
    intervalMs: HITS_REPORT_MS,
  });
  const addressHits = platform === 'linux' ? watchAddressHits({
    runner, intervalMs: ADDRESS_HITS_CHECK_MS, entries: () => addressEntries, resolved: resolvedBlocks.current, onHit: (hit) => hits.add(hit),
    onError: (error) => log.warn('could not read the address indicators\' hits', { error: error.message }),
  }) : null;

  /** A result that cannot be sent now is not lost: the server resends the command on reconnect and the journal answers it. */
  async function report(actionId: string, outcome: Outcome): Promise<void> {
    const jws = await signResult(privateKey, identity.deviceId, actionId, outcome);
    if (socket?.readyState !== WebSocket.OPEN) log.warn('result held until the server is back', { actionId });
    send({ t: 'result', jws });
  }

  async function execute(jws: string): Promise<void> {
    if (offboarding) throw new Refusal(null, 'this device is being offboarded: no command runs any more');
    // Verified one after another, so that commands are admitted in the order the server sent them.
    const verified = verifying.then(() => verifyCommand(jws, serverKey, identity.deviceId, maxSkew));
    verifying = verified.catch(() => {});
    const command = await verified;
    const { actionId } = command;
    const known = journal.outcomeOf(actionId);
    if (known) {
      // Redelivered after a lost result: report again, never run again.
      send({ t: 'ack', actionId });
      return report(actionId, known);
    }
    if (journal.wasStarted(actionId)) {
      if (inFlight.has(actionId)) {
        // Redelivered while this process is still carrying it out (the connection dropped and the server resent
        // its open commands): it was not interrupted, and the run in progress reports its result when it ends.
        send({ t: 'ack', actionId });
        return;
      }
      const interrupted: Outcome = { outcome: 'failed', error: 'The agent stopped while carrying out this action; its effect is unknown and it was not run again. Check the device before retrying.' };
      journal.finish(actionId, interrupted);
      send({ t: 'ack', actionId });
      return report(actionId, interrupted);
    }
    if (waiting.has(actionId)) {
      // Redelivered while it waits for its turn: it will run once, when its turn comes.
      send({ t: 'ack', actionId });
      return;
    }
    const stale = journal.staleReason(command);
    if (stale) throw new Refusal(actionId, stale);
    if (journal.nonceSeen(command.nonce)) throw new Refusal(actionId, 'command nonce was already used (replay)');
    if (waiting.size >= MAX_WAITING_COMMANDS) throw new Refusal(actionId, `the agent already has ${waiting.size} commands waiting; nothing was done`);

    waiting.add(actionId);
    send({ t: 'ack', actionId });
    await (HEAVY_TYPES.has(command.type) ? heavyLane : lane).run(async () => {
      waiting.delete(actionId);
      // An undo sent while its original is still running waits for the original's snapshot.
      if (command.undoOf) await finishing.get(command.undoOf);
      if (journal.nonceSeen(command.nonce)) throw new Refusal(actionId, 'command nonce was already used (replay)');
      const done = carryOut(command);
      finishing.set(actionId, done.catch(() => {}));
      try {
        await done;
      } finally {
        finishing.delete(actionId);
      }
    });
  }

  /** Runs one admitted command: journal first, then the executor, then the journal again and the signed report. */
  async function carryOut(command: CommandPayload): Promise<void> {
    const { actionId } = command;
    journal.start(actionId, command.nonce, command.exp, command.type, command.undoOf, command.iat);
    inFlight.add(actionId);
    log.info('action started', { actionId, type: command.type });
    let outcome: Outcome;
    const executor = executorFor(platform, command.type);
    if (typeof executor === 'string') {
      outcome = { outcome: 'failed', error: executor };
    } else {
      try {
        const run = () => executor({
          command, runner, agentDir: options.dir, serverAddresses, upload: (bytes) => uploadPackage(actionId, bytes), blockHashes: blocked,
          priorSnapshot: command.undoOf ? journal.snapshotOf(command.undoOf) : undefined,
        });
        const result: ExecutionResult = driftWatch && EFFECT_CHANGING_ACTION_TYPES.has(command.type) ? await driftWatch.exclusive(run) : await run();
        outcome = { outcome: 'completed', output: result.output, snapshot: result.snapshot };
      } catch (error) {
        outcome = { outcome: 'failed', error: (error as Error).message };
      }
    }
    journal.finish(actionId, outcome);
    inFlight.delete(actionId);
    // What is in force may have changed: the drift watch takes its new reference now rather than at its next tick.
    if (outcome.outcome === 'completed') void driftWatch?.checkNow();
    log.info('action finished', { actionId, type: command.type, outcome: outcome.outcome, error: outcome.error });
    await report(actionId, { outcome: outcome.outcome, output: outcome.output, error: outcome.error });
  }

  /** Enforces a signed state and keeps it for the next start; refuses one older than a state already applied. */
  async function enforceState(jws: string): Promise<{ version: number; outcome: ContainmentOutcome }> {
    const state = await verifyState(jws, serverKey);
    const stored = loadState(options.dir);
    if (stored && state.version < stored.version) throw new Refusal(null, `state version ${state.version} is older than version ${stored.version} already applied`);
    const outcome: ContainmentOutcome = platform === 'linux'
      ? await applyContainment(runner, state.containment, { own: ownAddresses(), server: serverAddresses })
      : { failures: Object.fromEntries(state.containment.map((e) => [e.actionId, `containment is not supported on ${platform} by this agent yet`])) };
    // Address and domain indicators: a failure is reported beside containment's, never in its place.
    const dns = state.dns ?? { block: [], audit: [], allow: [] };
    dnsLists = { block: new Set(dns.block), audit: new Set(dns.audit), allow: new Set(dns.allow) };
    const filtering = dns.block.length + dns.audit.length > 0;
    const dnsProblem = filtering ? await startFilteringDns() : null;
    if (dnsProblem !== null) outcome.failures[DNS_FAILURE] = dnsProblem;
    const addresses = { block: state.network?.blockAddresses ?? [], audit: state.network?.auditAddresses ?? [], redirectDns: filtering && dnsFilter !== null };
    const inTable = addresses.block.length + addresses.audit.length + (addresses.redirectDns ? 1 : 0);
    keptAddresses = [...serverAddresses, ...(state.network?.allowAddresses ?? [])];
    // What matched since the last look is read before the table (and its counters) is replaced.
    await addressHits?.readNow();
    const blocking = platform === 'linux' ? await applyAddressBlocks(runner, addresses, keptAddresses)
      : inTable > 0 ? `address indicators are not supported on ${platform} by this agent yet` : null;
    if (blocking !== null) outcome.failures[ADDRESS_BLOCKS_FAILURE] = blocking;
    blockingHere = inTable > 0 && blocking === null;
    addressEntries = blocking === null ? addresses : { block: [], audit: [] };
    // Replacing the table emptied the sets of what blocked names resolve to.
    if (platform === 'linux') void resolvedBlocks.reapplied(blocking === null && addresses.redirectDns ? dnsLists.block : new Set());
    // Stopped only once nothing is redirected to it any more.
    if (!filtering) await stopFilteringDns();
    saveState(options.dir, { version: state.version, jws });
    containedHere = state.containment.map((e) => e.actionId).filter((id) => outcome.error === undefined && !(id in outcome.failures));
    const blocks = new Set([...state.antivirus.blockSha256, ...(state.antivirus.blockSha1 ?? []), ...(state.antivirus.blockMd5 ?? [])]);
    const audits = new Set(state.antivirus.audit ?? []);
    const newHashes = [...blocks].some((hash) => !blocked.has(hash)) || [...audits].some((hash) => !audited.has(hash));
    // Verdicts the exec guard remembers were given against the old list, blocks lifted since included.
    if (blocks.size !== blocked.size || newHashes) execGuard?.listsChanged();
    blocked = blocks;
    audited = audits;
    remediated = new Set(state.antivirus.remediate ?? []);
    // Files already sitting in watched folders are looked at again against the new block and audit indicators.
    if (newHashes) void malwareWatch?.sweep();
    return { version: state.version, outcome };
  }

  /** Starts the DNS filter if it is not running; why it could not, or null. */
  async function startFilteringDns(): Promise<string | null> {
    if (platform !== 'linux') return `domain and URL indicators are not supported on ${platform} by this agent yet`;
    if (dnsFilter !== null) return null;
    if ((await resolvers()).length === 0) return 'the DNS filter has no resolver to forward to: /etc/resolv.conf names none that is not on loopback';
    try {
      dnsFilter = await startDnsFilter({ lists: () => dnsLists, onHit: onDnsHit, onForwarded: (addresses) => resolvedBlocks.answeredForOthers(addresses), resolvers });
      log.info('DNS filter started');
      return null;
    } catch (error) {
      return (error as Error).message;
    }
  }

  async function stopFilteringDns(): Promise<void> {
    await dnsFilter?.close();
    if (dnsFilter) log.info('DNS filter stopped');
    dnsFilter = null;
  }

  /** A name that matched a domain entry: reported with the process that asked, where it still has its socket. */
  function onDnsHit(hit: IndicatorHit, client: { protocol: 'udp' | 'tcp'; port: number }): void {
    if (hit.action === 'block' && hit.name !== undefined) void resolvedBlocks.resolve(hit.name);
    void socketOwner(runner, [client.protocol === 'udp' ? '-Huanp' : '-Htanp', 'sport', '=', `:${client.port}`]).then((owner) => hits.add({ ...hit, ...owner }));
  }

  /** Runs `work` once every state application before it has ended: states and their repairs are applied one at a time, in order. */
  function inStateOrder(work: () => Promise<void>): Promise<void> {
    const run = stateWork.then(work);
    stateWork = run.catch(() => {});
    return run;
  }

  async function onState(jws: string): Promise<void> {
    const { version, outcome } = await enforceState(jws);
    log.info('containment state applied', { version, failures: outcome.failures, error: outcome.error });
    // The drift watch takes what was just applied as its reference now, not at its next tick.
    void driftWatch?.checkNow();
    send({ t: 'state_applied', jws: signStateReport(privateKey, identity.deviceId, version, outcome) });
  }

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
    const quarantined = detection.indicator === undefined || remediated.has(detection.indicator);
    log.warn('execution refused', { path: finding.path, sha256: finding.sha256, signature: finding.signature, pid, process: name, quarantined });
    const now = Date.now();
    if (detection.indicator !== undefined) {
      hits.add({ value: detection.indicator, action: 'block', path: finding.path, sha256: finding.sha256, quarantined, process: { pid, name: name.slice(0, 1024) }, count: 1, firstAt: now, lastAt: now });
    }
    if (quarantined) await quarantineOnSight(finding);
  }

  /**
   * The antivirus found malware: quarantine it at once, exactly once (the
   * journal), and report the action, signed, until the server has it.
   */
  async function quarantineOnSight(finding: ScanFinding): Promise<void> {
    if (journal.restoredFile(finding.path, finding.sha256)) {
      log.info('antivirus left alone a file an analyst restored', { path: finding.path, sha256: finding.sha256, signature: finding.signature });
      return;
    }
    const actionId = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const entity = { name: basename(finding.path), path: finding.path, sha256: finding.sha256 };
    const command: CommandPayload = { v: 1, actionId, deviceId: identity.deviceId, type: 'quarantine_file', entity, parameters: {}, undoOf: null, iat: now, exp: now, nonce: `antivirus-${actionId}` };
    journal.start(actionId, command.nonce, now, command.type, null, null);
    let output: string;
    try {
      const result = await quarantineFile({ command, runner, agentDir: options.dir, serverAddresses, priorSnapshot: undefined, upload: async () => {} });
      journal.finish(actionId, { outcome: 'completed', output: result.output, snapshot: result.snapshot });
      output = result.output;
    } catch (error) {
      journal.finish(actionId, { outcome: 'failed', error: (error as Error).message });
      log.warn('antivirus could not quarantine', { path: finding.path, signature: finding.signature, error: (error as Error).message });
      return;
    }
    log.info('antivirus quarantined a file', { actionId, path: finding.path, sha256: finding.sha256, signature: finding.signature });
    const report = signLocalAction(privateKey, { deviceId: identity.deviceId, actionId, type: 'quarantine_file', entity, detection: finding.signature, output, at: Date.now() });
    journal.reportLocal(actionId, report);
    send({ t: 'local_action', jws: report });
  }

  function onFrame(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      log.warn('server sent a frame that is not JSON');
      return;
    }
    // Anything can arrive on the wire (`null`, a number, an array): reading `.t` of null would throw inside
    // the socket's event handler and take the whole agent down, so whatever is not a frame is logged and dropped.
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
      log.warn('server sent a frame that is not an object');
      return;
    }
    switch (frame.t) {
      case 'challenge': {
        send({ t: 'hello', deviceId: identity.deviceId, signature: helloSignature(privateKey, frame.nonce, identity.deviceId) });
        return;
      }
      case 'welcome':
        welcomed = true;
        backoffMs = 500;
        log.info('connected', { server: identity.serverUrl, deviceId: identity.deviceId });
        onWelcome.forEach((resolve) => resolve());
        onWelcome = [];
        // What the antivirus did while the server was out of reach, or before it answered.
        for (const report of journal.unacknowledgedReports()) send({ t: 'local_action', jws: report });
        for (const jws of heldDrift.splice(0)) send({ t: 'drift', jws });
        hits.flush({ resend: true });
        return;
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
        const work = execute(String(frame.jws)).catch((error: unknown) => {
          const refusal = error instanceof Refusal ? error : new Refusal(null, (error as Error).message);
          log.warn('command refused', { actionId: refusal.actionId, reason: refusal.message });
          send({ t: 'rejected', actionId: refusal.actionId, reason: refusal.message });
        });
        running.add(work);
        void work.finally(() => running.delete(work));
        return;
      }
      case 'state': {
        const jws = String(frame.jws);
        void inStateOrder(() => onState(jws)).catch((error: unknown) => {
          const reason = (error as Error).message;
          log.warn('desired state refused', { reason });
          send({ t: 'rejected', actionId: null, reason });
        });
        return;
      }
      case 'offboard': {
        const jws = String(frame.jws);
        void offboard(jws).catch((error: unknown) => {
          const reason = (error as Error).message;
          log.warn('offboarding refused', { reason });
          send({ t: 'rejected', actionId: null, reason });
        });
        return;
      }
      case 'refused':
        log.warn('server refused the connection', { reason: frame.reason });
        return;
      default:
        log.warn('server sent a frame that is not part of the protocol', { t: String((frame as { t?: unknown }).t) });
    }
  }

  /**
   * The server offboards this device: nothing else runs from here on. What
   * Quell put in force is released (unless the server said to keep it), the
   * vault is left with instructions, the identity removed, and the signed
   * report sent before the agent stops for good.
   */
  async function offboard(jws: string): Promise<void> {
    const order = await verifyOffboard(jws, serverKey, identity.deviceId, maxSkew);
    if (offboarding) return;
    offboarding = true;
    log.warn('offboarding', { releaseEffects: order.releaseEffects });
    driftWatch?.close();
    driftEvents?.close();
    malwareWatch?.close();
    execGuard?.close();
    addressHits?.close();
    hits.close();
    await Promise.allSettled([...running, stateWork]);
    await stopFilteringDns();
    const report = await offboardEndpoint({ runner, agentDir: options.dir, deviceId: identity.deviceId, journal, releaseEffects: order.releaseEffects });
    log.warn('offboarded', { ...report });
    const signed = signOffboarded(privateKey, { deviceId: identity.deviceId, ...report });
    await new Promise<void>((resolve) => {
      if (socket?.readyState !== WebSocket.OPEN) return resolve();
      socket.send(JSON.stringify({ t: 'offboarded', jws: signed } satisfies AgentFrame), () => resolve());
    });
    stopping = true;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    socket?.close();
    journal.close();
    options.onOffboarded?.();
  }

  /** PUTs a package to the server, signed over the action, this device and the package's hash. */
  const uploadPackage = (actionId: string, bytes: Buffer): Promise<void> =>
    uploadSignedPackage({ serverUrl: identity.serverUrl, deviceId: identity.deviceId, privateKey, pin: identity.serverCert }, actionId, bytes);

  /** State that must hold on this device whatever happened while the agent was down (a reboot empties the firewall). */
  async function restoreDesiredState(): Promise<void> {
    if (platform !== 'linux') return;
    const stored = loadState(options.dir);
    if (stored) {
      try {
        const applied = await enforceState(stored.jws);
        log.info('containment state re-applied', { version: applied.version, failures: applied.outcome.failures, error: applied.outcome.error });
      } catch (error) {
        log.warn('could not re-apply the containment state', { error: (error as Error).message });
      }
    }
    const isolation = journal.inForce('isolate_device', 'release_isolation');
    if (isolation) {
      try {
        if (await reapplyIsolation(runner, isolation.snapshot)) log.warn('isolation was missing and has been re-applied', { actionId: isolation.actionId });
      } catch (error) {
        log.warn('could not re-apply isolation', { actionId: isolation.actionId, error: (error as Error).message });
      }
    }
    // Mount options do not survive a reboot either. Restricting again is idempotent (restricted places are
    // left alone), and undo still restores from the snapshot the original action took.
    const restriction = journal.inForce('restrict_code_execution', 'remove_code_restriction');
    if (restriction) {
      try {
        log.info('code restriction re-applied', { actionId: restriction.actionId, output: await restrictAgain(restriction.actionId) });
      } catch (error) {
        log.warn('could not re-apply the code restriction', { actionId: restriction.actionId, error: (error as Error).message });
      }
    }
  }

  /** Restricting again is idempotent (restricted places are left alone); undo still restores from the original action's snapshot. */
  async function restrictAgain(actionId: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const result = await restrictCodeExecution({
      command: { v: 1, actionId, deviceId: identity.deviceId, type: 'restrict_code_execution', entity: { name: 'device' }, parameters: {}, undoOf: null, iat: now, exp: now, nonce: 'desired-state' },
      runner, agentDir: options.dir, serverAddresses, priorSnapshot: undefined, upload: async () => {},
    });
    return result.output;
  }

  /** An effect found lifted and put back (or not): said in the log and reported, signed, now or once the server is back. */
  function onDrift(report: DriftReport): void {
    const fields = { effect: report.effect, actionIds: report.actionIds, found: report.found, error: report.error };
    if (report.repaired) log.warn('effect re-applied after tampering', fields);
    else log.warn('effect found lifted and could not be re-applied', fields);
    // Only what actions put in force is reported (address blocks are the desired state's): the log says the rest.
    if (report.actionIds.length === 0) return;
    const jws = signDrift(privateKey, { deviceId: identity.deviceId, ...report });
    if (socket?.readyState === WebSocket.OPEN) send({ t: 'drift', jws });
    else if (heldDrift.push(jws) > MAX_HELD_DRIFT) heldDrift.shift();
  }

  function connect(): void {
    const url = new URL(API_PATHS.agentConnect, identity.serverUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // ws hands TLS options to tls.connect as they are; its own type for checkServerIdentity is narrower than Node's.
    const ws = new WebSocket(url, { maxPayload: AGENT_MAX_FRAME_BYTES, handshakeTimeout: 10_000, ...(pinnedTls(identity.serverCert) as WebSocket.ClientOptions) });
    socket = ws;
    welcomed = false;
    ws.on('message', (data) => onFrame(data.toString()));
    ws.on('error', (error) => log.warn('connection error', { error: error.message }));
    ws.on('close', (code, reason) => {
      log.info('disconnected', { code, reason: reason.toString() });
      if (socket === ws) socket = null;
      if (stopping) return;
      reconnectTimer = setTimeout(connect, backoffMs);
      backoffMs = Math.min(backoffMs * 2, 30_000);
    });
  }

  await restoreDesiredState();
  if (platform === 'linux') {
    driftEvents = driftTriggers((keys) => void driftWatch?.checkNow(keys), (source, error) => log.warn('drift events unavailable: the periodic check covers them', { source, error: error.message }));
    driftWatch = watchDrift({
      effects: linuxEnforcedEffects({
        runner, journal, restrict: async (actionId) => void (await restrictAgain(actionId)),
        async containAgain(actionId, name) {
          const now = Math.floor(Date.now() / 1000);
          await containUser({
            command: { v: 1, actionId, deviceId: identity.deviceId, type: 'contain_user', entity: { name }, parameters: { allowSystemAccount: true }, undoOf: null, iat: now, exp: now, nonce: 'desired-state' },
            runner, agentDir: options.dir, serverAddresses, priorSnapshot: undefined, upload: async () => {},
          });
        },
        addressBlocks: { inForce: () => blockingHere, version: () => loadState(options.dir)?.version ?? 0 },
        containment: {
          actionIds: () => containedHere,
          // In turn with the states that arrive: a repair never puts back an older state over a newer one.
          reapply: () => inStateOrder(async () => {
            const stored = loadState(options.dir);
            if (stored) await enforceState(stored.jws);
          }),
        },
      }),
      intervalMs: options.driftCheckMs ?? DEFAULT_DRIFT_CHECK_SECONDS * 1000,
      onDrift,
      onError: (effect, error) => log.warn('could not check an effect in force', { effect, error: error.message }),
      onRound: (checks) => driftEvents?.follow(checks.flatMap((c) => (c.signals ? [{ key: checkKey(c), signals: c.signals }] : []))),
    });
    // At once: the reference of what is in force is taken, and its events followed, from the start.
    void driftWatch.checkNow();
  }
  if (platform === 'linux' && options.watch && options.watch.length > 0) {
    malwareWatch = watchForMalware({
      folders: options.watch,
      lists: () => ({ blocked, audited }),
      onDetection,
      onError: (path, error) => log.warn('antivirus could not examine a file', { path, error: error.message }),
    });
    log.info('antivirus watching', { folders: options.watch });
    void malwareWatch.sweep();
  }
  if (platform === 'linux' && options.execGuard && options.execGuard.length > 0) {
    const helper = execGuardHelper();
    if (helper === null) log.warn('exec guard unavailable: its helper was not built with the agent (a C compiler is needed)');
    else {
      try {
        // The same guards as a quarantine's, read afresh for each refusal: what the agent would never quarantine, it never stops from running.
        const guards = () => {
          const now = Math.floor(Date.now() / 1000);
          return guardsFor({
            command: { v: 1, actionId: randomUUID(), deviceId: identity.deviceId, type: 'quarantine_file', entity: { name: 'exec guard' }, parameters: {}, undoOf: null, iat: now, exp: now, nonce: 'exec-guard' },
            runner, agentDir: options.dir, serverAddresses, priorSnapshot: undefined, upload: async () => {},
          });
        };
        execGuard = await startExecGuard({
          helper, paths: options.execGuard, blocked: () => blocked, spared: (path, id) => guards().file(path, id),
          onSpared: (path, reason) => log.warn('a blocked file was let run: refusing it would harm the device', { path, reason }),
          onRefused: (refused) => void onRefusedExecution(refused),
          onError: (error) => log.warn('exec guard', { error: error.message }),
        });
        log.info('exec guard on', { paths: options.execGuard });
      } catch (error) {
        log.warn('exec guard unavailable', { error: (error as Error).message });
      }
    }
  }
  connect();
  return {
    deviceId: identity.deviceId,
    connected: () => (welcomed ? Promise.resolve() : new Promise<void>((resolve) => onWelcome.push(resolve))),
    async stop() {
      stopping = true;
      malwareWatch?.close();
      execGuard?.close();
      addressHits?.close();
      hits.close();
      driftWatch?.close();
      driftEvents?.close();
      // The endpoint's DNS must not be sent to a filter that is gone: the redirect goes first.
      if (dnsFilter) {
        await inStateOrder(async () => {
          const failed = await applyAddressBlocks(runner, { ...addressEntries, redirectDns: false }, keptAddresses);
          if (failed) log.warn('could not remove the DNS redirect', { error: failed });
          await stopFilteringDns();
        });
      }
      if (reconnectTimer) clearTimeout(reconnectTimer);
      socket?.close();
      await Promise.allSettled([...running, stateWork]);
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

/** This device's own addresses (IP and MAC), which it never contains. */
function ownAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((i) => !i.internal).flatMap((i) => [i.address.replace(/%.*$/, ''), i.mac]));
}

async function resolveAll(hostname: string): Promise<string[]> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  try {
    return [...new Set((await lookup(bare, { all: true })).map((a) => a.address))];
  } catch {
    return [];
  }
}
