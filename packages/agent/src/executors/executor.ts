import type { ActionType, CommandOf } from '@quell/contracts';
import type { CommandRunner } from '../runner.ts';

export interface ExecutionContext<T extends ActionType = ActionType> {
  /** Checked against its type's parameter schema before it gets here. */
  command: CommandOf<T>;
  /** For undo types: the snapshot the original action took before it acted. */
  priorSnapshot: unknown;
  runner: CommandRunner;
  /** The agent's own directory (root-only), home of the quarantine vault. */
  agentDir: string;
  /** Addresses of the Quell server, which isolation always keeps reachable. */
  serverAddresses: readonly string[];
  /** Sends a file this action produced (an investigation package) to the server, signed by this agent. */
  upload(bytes: Buffer): Promise<void>;
  /** The file block indicators of the desired state in force (SHA-256, SHA-1 and MD5 hashes, told apart by length), for antivirus scans. */
  blockHashes?: ReadonlySet<string>;
}

/** What an action left behind: words for the analyst and the prior state for its undo. */
export interface ExecutionResult { output: string; snapshot?: unknown }

/**
 * One action type on one platform. It snapshots what it will change, acts,
 * then verifies the effect itself and throws if it does not hold.
 */
export type Executor<T extends ActionType = ActionType> = (ctx: ExecutionContext<T>) => Promise<ExecutionResult>;

export class ExecutionError extends Error {}

/** What a file restore puts back besides the bytes: their hash, permissions, owner and times. */
export interface FileMetadata {
  sha256: string;
  mode: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
}
