import { createInterface } from 'node:readline';
import type { CommandPayload } from '@quell/contracts';
import { type CommandRunner, type RunResult, systemRunner } from '../../runner.ts';
import { containUser, releaseUser } from '../contain-user.linux.ts';
import type { Executor } from '../executor.ts';
import { executionContext } from './recording-runner.ts';
import { removePersistence, restorePersistence } from '../persistence.linux.ts';
import { removeScheduledTask, restoreScheduledTask } from '../scheduled-task.linux.ts';

/**
 * Stands for the agent inside the private mount namespace that
 * executor-sandbox.ts makes, where /etc, /var/spool and /home are copies:
 * it carries out the executors a test asks for, one JSON line each on stdin,
 * and answers with one JSON line each on stdout.
 *
 *   { id, executor, command, priorSnapshot?, proxy? }  →  { id, result } | { id, error }
 *
 * With `proxy`, every command the executor runs is asked of the test
 * (`{ call, command, args, input }`, answered `{ answer: call, result }`),
 * which simulates what this machine cannot host (systemd) and records it.
 */

// The test names the executor and builds its command: each gets the command the test gave it.
const EXECUTORS = { removeScheduledTask, restoreScheduledTask, removePersistence, restorePersistence, containUser, releaseUser } as Record<string, Executor>;

interface Request { id: number; executor: string; command: Pick<CommandPayload, 'type' | 'entity'> & Partial<CommandPayload>; priorSnapshot?: unknown; proxy?: boolean }
type Answer = { answer: number; result: RunResult };

const send = (message: unknown): void => void process.stdout.write(`${JSON.stringify(message)}\n`);

const awaiting = new Map<number, (result: RunResult) => void>();
let calls = 0;
const proxied: CommandRunner = {
  run: (command, args, input) => new Promise((resolve) => {
    const call = calls++;
    awaiting.set(call, resolve);
    send({ call, command, args: [...args], ...(input === undefined ? {} : { input }) });
  }),
};

async function carryOut({ id, executor, command, priorSnapshot, proxy }: Request): Promise<void> {
  try {
    const execute = EXECUTORS[executor];
    if (!execute) throw new Error(`no executor ${executor} in the sandbox lab`);
    const result = await execute(executionContext(proxy ? proxied : systemRunner, command, { priorSnapshot }));
    send({ id, result: JSON.parse(JSON.stringify(result)) as unknown });
  } catch (error) {
    send({ id, error: (error as Error).message });
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const message = JSON.parse(line) as Request | Answer;
  if ('answer' in message) {
    awaiting.get(message.answer)?.(message.result);
    awaiting.delete(message.answer);
  } else {
    void carryOut(message);
  }
});
send({ ready: true });
