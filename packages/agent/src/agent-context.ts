import { AGENT_PROTOCOL_VERSION, type ActionParameters, type ActionType, type CommandOf, type Entity, type Platform } from '@quell/contracts';
import type { Journal } from './journal.ts';
import type { AgentLog } from './log.ts';
import type { CommandRunner } from './runner.ts';

/** What the agent's parts (command runner, desired-state enforcer, antivirus responder) share. */
export interface AgentContext {
  deviceId: string;
  platform: Platform;
  runner: CommandRunner;
  /** The agent's own folder: its journal, the state in force, the quarantine vault. */
  agentDir: string;
  /** The server's addresses, which containment never cuts off. */
  serverAddresses: readonly string[];
  journal: Journal;
  log: AgentLog;
}

/**
 * A command the agent gives itself — the antivirus quarantining, the
 * desired state putting an effect back, offboarding undoing one — to run
 * through the same executors as the server's signed commands. It is never
 * signed: `nonce` says where it came from.
 */
export function localCommand<T extends ActionType>(
  deviceId: string, command: { actionId: string; type: T; entity: Entity; nonce: string; parameters: ActionParameters<T>; undoOf?: string | null },
): CommandOf<T> {
  const now = Math.floor(Date.now() / 1000);
  return { ...command, v: AGENT_PROTOCOL_VERSION, deviceId, undoOf: command.undoOf ?? null, iat: now, exp: now };
}
