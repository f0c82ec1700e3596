import { randomUUID } from 'node:crypto';
import { type ActionType, type CommandOf, AGENT_PROTOCOL_VERSION } from '@quell/contracts';
import type { CommandRunner, RunResult } from '../../runner.ts';
import type { ExecutionContext } from '../executor.ts';

/** Answers one command the way the simulated system would, changing its state as the real one does. */
export type Simulation = (command: string, args: readonly string[], input?: string) => RunResult | Promise<RunResult>;

/**
 * The runner for what this machine cannot host (systemd, kernel modules,
 * Windows): it records every command exactly as an executor issued it and
 * answers from a simulation, so tests assert the command sequence itself.
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: { command: string; args: string[]; input?: string }[] = [];

  constructor(private readonly simulate: Simulation) {}

  async run(command: string, args: readonly string[], input?: string): Promise<RunResult> {
    this.calls.push({ command, args: [...args], ...(input === undefined ? {} : { input }) });
    return this.simulate(command, args, input);
  }

  /** Every command so far as one string each (`systemctl stop evil.service`), then forgets them. */
  take(): string[] {
    return this.calls.splice(0).map(({ command, args }) => [command, ...args].join(' '));
  }
}

export const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
export const failed = (code: number, stderr: string, stdout = ''): RunResult => ({ code, stdout, stderr });

/** A command as the agent hands it to an executor, with what a test does not care about filled in. */
export function executionContext<T extends ActionType>(
  runner: CommandRunner,
  command: Pick<CommandOf<T>, 'type' | 'entity'> & Partial<CommandOf<T>>,
  options: { priorSnapshot?: unknown; agentDir?: string } = {},
): ExecutionContext<T> {
  const now = Math.floor(Date.now() / 1000);
  return {
    command: {
      v: AGENT_PROTOCOL_VERSION, actionId: randomUUID(), deviceId: randomUUID(), parameters: {}, undoOf: null,
      iat: now, exp: now + 3600, nonce: randomUUID(), ...command,
    } as CommandOf<T>,
    priorSnapshot: options.priorSnapshot,
    upload: async () => {
      throw new Error('this test context has no server to upload to');
    },
    runner,
    agentDir: options.agentDir ?? '/nonexistent/agent',
    serverAddresses: [],
  };
}
