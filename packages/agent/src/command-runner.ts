import type { KeyObject } from 'node:crypto';
import type { AgentContext } from './agent-context.ts';
import { type AgentFrame, type CommandPayload, EFFECT_CHANGING_ACTION_TYPES } from '@quell/contracts';
import type { DriftWatch } from './drift-watch.ts';
import type { ExecutionResult } from './executors/executor.ts';
import { executorFor } from './executors/registry.ts';
import type { Outcome } from './journal.ts';
import { Lane } from './lanes.ts';
import { Refusal, signResult, verifyCommand } from './protocol.ts';

/** How many commands run at once; the long ones (scans, packages, evidence) have their own, smaller lane. */
const COMMAND_SLOTS = 4;
const HEAVY_COMMAND_SLOTS = 2;
const HEAVY_TYPES: ReadonlySet<string> = new Set(['run_antivirus_scan', 'collect_investigation_package', 'collect_evidence']);
/** Beyond this many commands waiting, new ones are refused rather than held in memory. */
const MAX_WAITING_COMMANDS = 256;

export interface CommandRunnerDeps extends AgentContext {
  privateKey: KeyObject;
  serverKey: KeyObject;
  maxSkewSeconds: number;
  send(frame: AgentFrame): boolean;
  isOpen(): boolean;
  /** The block indicators by hash in force, which scans look for too. */
  blockHashes(): ReadonlySet<string>;
  /** The drift watch, once started: effects change under it one at a time. */
  driftWatch(): DriftWatch | null;
  /** Sends what an action produced (an investigation package) to the server, signed. */
  upload(actionId: string, bytes: Buffer): Promise<void>;
}

/**
 * Carries out signed commands, each exactly once: verified in the order they
 * came, checked against the journal (a redelivery is answered, never run
 * again), run in their lane, journalled before and after, reported signed.
 */
export function createCommandRunner(deps: CommandRunnerDeps) {
  const { deviceId, journal, log } = deps;
  let verifying: Promise<unknown> = Promise.resolve();
  /** Set once the server has offboarded this device: no command runs any more. */
  let refusing = false;
  /** Commands accepted and waiting for a free slot in their lane. */
  const waiting = new Set<string>();
  const lane = new Lane(COMMAND_SLOTS);
  const heavyLane = new Lane(HEAVY_COMMAND_SLOTS);
  /** Each action being carried out, settled when it has finished. */
  const finishing = new Map<string, Promise<void>>();
  /** Actions this process is carrying out right now (journal started, not yet finished). */
  const inFlight = new Set<string>();

  /** A result that cannot be sent now is not lost: the server resends the command on reconnect and the journal answers it. */
  function report(actionId: string, outcome: Outcome): void {
    const jws = signResult(deps.privateKey, deviceId, actionId, outcome);
    if (!deps.isOpen()) log.warn('result held until the server is back', { actionId });
    deps.send({ t: 'result', jws });
  }

  async function execute(jws: string): Promise<void> {
    if (refusing) throw new Refusal(null, 'this device is being offboarded: no command runs any more');
    // Verified one after another, so that commands are admitted in the order the server sent them.
    const verified = verifying.then(() => verifyCommand(jws, deps.serverKey, deviceId, deps.maxSkewSeconds));
    verifying = verified.catch(() => {});
    const command = await verified;
    const { actionId } = command;
    const known = journal.outcomeOf(actionId);
    if (known) {
      // Redelivered after a lost result: report again, never run again.
      deps.send({ t: 'ack', actionId });
      return report(actionId, known);
    }
    if (journal.wasStarted(actionId)) {
      if (inFlight.has(actionId)) {
        // Redelivered while this process is still carrying it out (the connection dropped and the server resent
        // its open commands): it was not interrupted, and the run in progress reports its result when it ends.
        deps.send({ t: 'ack', actionId });
        return;
      }
      const interrupted: Outcome = { outcome: 'failed', error: 'The agent stopped while carrying out this action; its effect is unknown and it was not run again. Check the device before retrying.' };
      journal.finish(actionId, interrupted);
      deps.send({ t: 'ack', actionId });
      return report(actionId, interrupted);
    }
    if (waiting.has(actionId)) {
      // Redelivered while it waits for its turn: it will run once, when its turn comes.
      deps.send({ t: 'ack', actionId });
      return;
    }
    const stale = journal.staleReason(command);
    if (stale) throw new Refusal(actionId, stale);
    if (journal.nonceSeen(command.nonce)) throw new Refusal(actionId, 'command nonce was already used (replay)');
    if (waiting.size >= MAX_WAITING_COMMANDS) throw new Refusal(actionId, `the agent already has ${waiting.size} commands waiting; nothing was done`);

    waiting.add(actionId);
    deps.send({ t: 'ack', actionId });
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
    const executor = executorFor(deps.platform, command.type);
    const driftWatch = deps.driftWatch();
    if (typeof executor === 'string') {
      outcome = { outcome: 'failed', error: executor };
    } else {
      try {
        const run = () => executor({
          command, runner: deps.runner, agentDir: deps.agentDir, serverAddresses: deps.serverAddresses, upload: (bytes) => deps.upload(actionId, bytes),
          blockHashes: deps.blockHashes(), priorSnapshot: command.undoOf ? journal.snapshotOf(command.undoOf) : undefined,
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
    report(actionId, { outcome: outcome.outcome, output: outcome.output, error: outcome.error });
  }

  return {
    execute,
    /** From now on every command is refused: the device is being offboarded. */
    refuseAll(): void {
      refusing = true;
    },
  };
}
