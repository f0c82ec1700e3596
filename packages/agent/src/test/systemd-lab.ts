import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { SYSTEMD_ROOT } from '../systemd-root.ts';
import { AGENT_BUNDLE, type AgentProcess, waitFor, watchedAgent } from './helper.ts';

const exec = promisify(execFile);


export interface CommandOutput { code: number; stdout: string; stderr: string }

/**
 * A real systemd booted as PID 1 of a container (systemd-nspawn), with its
 * journald, logind, D-Bus and cron. This machine runs no systemd itself, so
 * this is where the service, timer and cron executors meet the real thing.
 * The container shares the host's network (the agent inside reaches the
 * test server on 127.0.0.1) but has its own mounts, processes and /etc.
 */
export interface SystemdContainer {
  /** Runs a program inside the container, as root, and returns how it ended. */
  run(command: string, args?: string[]): Promise<CommandOutput>;
  /** Runs a shell script inside the container and returns its stdout; throws when it fails. */
  sh(script: string): Promise<string>;
  /** Starts the bundled agent inside the container, on a state folder bound in from the host. */
  spawnAgent(dir: string): AgentProcess;
  close(): Promise<void>;
}

/** The container's init: the child of systemd-nspawn once it has become systemd. */
function initOf(nspawn: number): number | undefined {
  const children = readFileSync(`/proc/${nspawn}/task/${nspawn}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  const init = children.length === 1 ? Number(children[0]) : undefined;
  return init !== undefined && readFileSync(`/proc/${init}/comm`, 'utf8').trim() === 'systemd' ? init : undefined;
}

/** Boots the container with the host folders in `binds` visible at the same paths (read-write). */
export async function bootSystemd(binds: readonly string[] = []): Promise<SystemdContainer> {
  const nspawn = spawn('systemd-nspawn', [
    '--quiet', `--directory=${SYSTEMD_ROOT}`, '--volatile=overlay', '--boot', '--console=pipe', '--register=no', '--keep-unit',
    `--bind-ro=${process.execPath}`, `--bind-ro=${AGENT_BUNDLE}`, ...binds.map((dir) => `--bind=${dir}`),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  nspawn.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  nspawn.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(nspawn, 'exit');

  let init: number;
  try {
    init = await waitFor('the container\'s init to start', async () => {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited (${nspawn.exitCode}): ${output}`);
      return initOf(nspawn.pid!);
    });
  } catch (error) {
    nspawn.kill('SIGKILL');
    throw error;
  }

  const run = async (command: string, args: string[] = []): Promise<CommandOutput> => {
    try {
      const { stdout, stderr } = await exec('nsenter', ['-t', String(init), '-a', command, ...args], { timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failure = error as { code?: number | string; stdout?: string; stderr?: string };
      if (typeof failure.code !== 'number') throw error;
      return { code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
    }
  };
  const sh = async (script: string): Promise<string> => {
    const result = await run('/bin/sh', ['-ec', script]);
    if (result.code !== 0) throw new Error(`in the container, "${script}" failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  };

  // `is-system-running --wait` returns once boot has finished, whatever the outcome. Until systemd has mounted
  // its /run and made /run/systemd/system it says nothing, or "offline", which this early means "not yet".
  const booted = async () => {
    const state = (await run('systemctl', ['is-system-running', '--wait'])).stdout.trim();
    return state === '' || state === 'offline' ? undefined : state;
  };
  const state = await waitFor('systemd in the container to finish booting', booted, 60_000).catch((error: Error) => `not booted (${error.message})`);
  if (state !== 'running') {
    const failedUnits = (await run('systemctl', ['--failed', '--no-legend'])).stdout;
    nspawn.kill('SIGKILL');
    throw new Error(`systemd in the container is ${state}, not running. Failed units: ${failedUnits || 'none'}. Its console:\n${output.slice(-4_000)}`);
  }

  const agents: ChildProcess[] = [];
  return {
    run,
    sh,
    spawnAgent(dir) {
      const child = spawn('nsenter', ['-t', String(init), '-a', process.execPath, AGENT_BUNDLE, 'run', '--dir', dir, '--watch=', '--exec-guard=']);
      agents.push(child);
      return watchedAgent(child);
    },
    async close() {
      for (const agent of agents) if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
      // SIGTERM to systemd-nspawn shuts the container down cleanly; the overlay goes with it.
      nspawn.kill('SIGTERM');
      const timeout = setTimeout(() => nspawn.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timeout);
    },
  };
}
