import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Action } from '@quell/contracts';
import { systemActor } from '@quell/server';
import type { TestContext } from '@quell/server/testing';

const exec = promisify(execFile);
export const QUELL = new URL('../../../cli/bin/quell.js', import.meta.url).pathname;

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
export const AGENT_BUNDLE = new URL('../../dist/quell-agent.mjs', import.meta.url).pathname;

/** A periodic drift check longer than any test: a repair a test sees was started by an event. */
export const NO_PERIODIC_CHECK_SECONDS = 3600;

/**
 * A private mount namespace for an agent that is handed hostile commands:
 * `etc` (a copy of /etc) is mounted over /etc, so the account databases and
 * cron folders it sees are copies and the host's own are out of its reach.
 * `binds` mounts more test folders over system folders, by the path the
 * agent sees them at (`{ '/var/tmp': dir }`).
 */
export interface Sandbox { etc: string; binds?: Readonly<Record<string, string>> }

function sandboxed(sandbox: Sandbox): string[] {
  const pairs = Object.entries({ '/etc': sandbox.etc, ...sandbox.binds }).flatMap(([target, source]) => [source, target]);
  const script = 'while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done; shift; exec "$@"';
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-ec', script, 'sandbox', ...pairs, '--'];
}

/**
 * Test folders under `root` for every system folder an attacker plants
 * persistence in, to mount over the real ones in an agent's sandbox: copies
 * of /etc and /var/spool (with cron's crontabs folder), and an empty /home,
 * /root and /var/tmp with their usual modes.
 */
export function sandboxFolders(root: string): Sandbox {
  const folder = (name: string, mode: number): string => {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, mode);
    return dir;
  };
  mkdirSync(root, { recursive: true });
  const etc = join(root, 'etc');
  execFileSync('cp', ['-a', '/etc', etc]);
  const spool = join(root, 'spool');
  execFileSync('cp', ['-a', '/var/spool', spool]);
  mkdirSync(join(spool, 'cron', 'crontabs'), { recursive: true });
  chmodSync(join(spool, 'cron', 'crontabs'), 0o1730);
  return { etc, binds: { '/var/spool': spool, '/home': folder('home', 0o755), '/root': folder('root', 0o700), '/var/tmp': folder('var-tmp', 0o1777) } };
}

/**
 * The process of a sandboxed agent that runs in its private mount namespace
 * (`ip netns exec` forks, and the agent runs as its child's child): the
 * descendant of `pid` that runs Node. Join its namespace with `nsenter -t`.
 */
export function agentProcessIn(pid: number): number | undefined {
  const node = realpathSync(process.execPath);
  const queue = [pid];
  for (let at = queue.shift(); at !== undefined; at = queue.shift()) {
    try {
      if (readlinkSync(`/proc/${at}/exe`) === node) return at;
      queue.push(...readFileSync(`/proc/${at}/task/${at}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
    } catch {
      // it ended, or has not started yet
    }
  }
  return undefined;
}

/**
 * Starts `quell agent run`, or with `bundle` the built quell-agent that
 * endpoints run. Its antivirus watches only the folders in `watch`, and its
 * exec guard guards only the mounts of `execGuard` (none by default: tests
 * must not quarantine the test machine's /tmp, nor hold its executions).
 */
export function spawnAgent(dir: string, netns?: string, options: { bundle?: boolean; watch?: string[]; execGuard?: string[]; sandbox?: Sandbox; driftCheckSeconds?: number } = {}): AgentProcess {
  const flags = [`--watch=${(options.watch ?? []).join(',')}`, `--exec-guard=${(options.execGuard ?? []).join(',')}`, ...(options.driftCheckSeconds ? [`--drift-check-seconds=${options.driftCheckSeconds}`] : [])];
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
