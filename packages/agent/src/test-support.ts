import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { Action } from '@quell/contracts';
import { systemActor } from '@quell/server';
import type { TestContext } from '../../server/src/test/helper.ts';

const exec = promisify(execFile);
export const QUELL = new URL('../../cli/bin/quell.js', import.meta.url).pathname;

/** Polls until `check` returns a value that is not undefined, or fails after the timeout. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The statuses in which an action has stopped moving. */
export const SETTLED = ['completed', 'failed', 'timed_out'] as const;

/** Polls an action through the service until it reaches one of `wanted`, and returns it. */
export function waitForAction(ctx: TestContext, id: string, wanted: readonly string[] = SETTLED, timeoutMs = 15_000): Promise<Action> {
  return waitFor(`action ${id} to reach ${wanted.join('/')}`, async () => {
    const { action } = await ctx.services.actions.get(systemActor(), id);
    return wanted.includes(action.status) ? action : undefined;
  }, timeoutMs);
}

/** Runs `quell …` to completion, optionally inside a network namespace. */
export async function quell(args: string[], netns?: string): Promise<string> {
  const [command, argv] = netns ? ['ip', ['netns', 'exec', netns, process.execPath, QUELL, ...args]] : [process.execPath, [QUELL, ...args]];
  const { stdout } = await exec(command, argv as string[], { timeout: 60_000 });
  return stdout;
}

/** A running `quell agent run` process; its JSON log lines are kept for assertions. */
export interface AgentProcess { child: ChildProcess; log: () => string; stop(signal?: NodeJS.Signals): Promise<number | null> }

/** The bundled agent that endpoints run (built by `npm run build:agent` at install). */
export const AGENT_BUNDLE = new URL('../dist/quell-agent.mjs', import.meta.url).pathname;

/**
 * A private mount namespace for an agent that is handed hostile commands:
 * `etc` (a copy of /etc) is mounted over /etc, so the account databases and
 * cron folders it sees are copies and the host's own are out of its reach.
 */
/** A periodic drift check longer than any test: a repair a test sees was started by an event. */
export const NO_PERIODIC_CHECK_SECONDS = 3600;

export interface Sandbox { etc: string }

function sandboxed(sandbox: Sandbox): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc && shift && exec "$@"', 'sandbox', sandbox.etc];
}

/**
 * Starts `quell agent run`, or with `bundle` the built quell-agent that
 * endpoints run. Its antivirus watches only the folders in `watch` (none by
 * default: tests must not quarantine the test machine's /tmp).
 */
export function spawnAgent(dir: string, netns?: string, options: { bundle?: boolean; watch?: string[]; sandbox?: Sandbox; driftCheckSeconds?: number } = {}): AgentProcess {
  const flags = [`--watch=${(options.watch ?? []).join(',')}`, ...(options.driftCheckSeconds ? [`--drift-check-seconds=${options.driftCheckSeconds}`] : [])];
  const args = options.bundle ? [AGENT_BUNDLE, 'run', '--dir', dir, ...flags] : [QUELL, 'agent', 'run', '--dir', dir, ...flags];
  const command = options.sandbox ? [...sandboxed(options.sandbox), process.execPath, ...args] : [process.execPath, ...args];
  return watchedAgent(netns ? spawn('ip', ['netns', 'exec', netns, ...command]) : spawn(command[0]!, command.slice(1)));
}

/** An agent process started some way or other, with its log kept and a stop that waits for its exit. */
export function watchedAgent(child: ChildProcess): AgentProcess {
  let log = '';
  child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    log: () => log,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
