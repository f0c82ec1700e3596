import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

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

/** Runs `quell …` to completion, optionally inside a network namespace. */
export async function quell(args: string[], netns?: string): Promise<string> {
  const [command, argv] = netns ? ['ip', ['netns', 'exec', netns, process.execPath, QUELL, ...args]] : [process.execPath, [QUELL, ...args]];
  const { stdout } = await exec(command, argv as string[], { timeout: 60_000 });
  return stdout;
}

/** A running `quell agent run` process; its JSON log lines are kept for assertions. */
export interface AgentProcess { child: ChildProcess; log: () => string; stop(signal?: NodeJS.Signals): Promise<number | null> }

export function spawnAgent(dir: string, netns?: string): AgentProcess {
  const args = [QUELL, 'agent', 'run', '--dir', dir];
  const child = netns ? spawn('ip', ['netns', 'exec', netns, process.execPath, ...args]) : spawn(process.execPath, args);
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
