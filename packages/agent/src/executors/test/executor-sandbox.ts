import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { CommandPayload } from '@quell/contracts';
import type { CommandRunner, RunResult } from '../../runner.ts';
import type { ExecutionResult } from '../executor.ts';

const LAB = new URL('./executor-sandbox-lab.ts', import.meta.url).pathname;
const ROOT = new URL('../../../../../', import.meta.url).pathname;

/**
 * Copies of /etc and /var/spool, and an empty /home and /root, on a tmpfs,
 * mounted over the real ones in a private mount namespace: accounts,
 * crontabs, unit files and shell startup files made and changed there never
 * reach this machine's own, and vanish with it.
 */
const MOUNT_COPIES = `
set -e
base="$1"; shift
mount -t tmpfs -o mode=0755 quell-sandbox "$base"
mkdir "$base/etc" "$base/spool" "$base/home"
mkdir -m 0700 "$base/root"
cp -a /etc/. "$base/etc/"
cp -a /var/spool/. "$base/spool/"
mkdir -p -m 1730 "$base/spool/cron/crontabs"
mount --bind "$base/etc" /etc
mount --bind "$base/spool" /var/spool
mount --bind "$base/home" /home
mount --bind "$base/root" /root
exec "$@"
`;

export interface ExecutorSandbox {
  /** The path that reaches `path` as the sandbox sees it (through /proc/PID/root), for reading and planting files from outside. */
  path(path: string): string;
  /** Runs a command inside the sandbox's mount namespace (useradd, su, id…) and returns its output. */
  run(command: string, args: string[], input?: string): string;
  /** Starts a long-running process inside the sandbox's mount namespace. */
  spawn(command: string, args: string[]): ChildProcess;
  /**
   * Carries out an executor in the sandbox, as the agent would; with
   * `runner`, every command it issues is answered by that runner instead
   * (a RecordingRunner simulating systemd). Rejects with the executor's error.
   */
  act(executor: 'removeScheduledTask' | 'restoreScheduledTask' | 'removePersistence' | 'restorePersistence' | 'containUser' | 'releaseUser',
    command: Pick<CommandPayload, 'type' | 'entity'> & Partial<CommandPayload>,
    options?: { priorSnapshot?: unknown; runner?: CommandRunner }): Promise<ExecutionResult>;
  close(): Promise<void>;
}

/** Starts the sandbox lab (executor-sandbox-lab.ts) in a private mount namespace over copies of the system's folders. */
export async function executorSandbox(): Promise<ExecutorSandbox> {
  const base = mkdtempSync(join(tmpdir(), 'quell-sandbox-'));
  const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', MOUNT_COPIES, 'sandbox', base, process.execPath, '--import', 'tsx', LAB], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let requests = 0;
  let runner: CommandRunner | undefined;
  const waiting = new Map<number, { resolve: (result: ExecutionResult) => void; reject: (error: Error) => void }>();
  let ready!: () => void;
  const started = new Promise<void>((resolve, reject) => {
    ready = resolve;
    void exited.then(() => reject(new Error(`the executor sandbox exited before it was ready: ${stderr}`)));
  });
  const send = (message: unknown): void => void child.stdin!.write(`${JSON.stringify(message)}\n`);

  createInterface({ input: child.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as { ready?: true; id?: number; result?: ExecutionResult; error?: string; call?: number; command?: string; args?: string[]; input?: string };
    if (message.ready) return ready();
    if (message.call !== undefined) {
      void Promise.resolve(runner!.run(message.command!, message.args!, message.input)).then((result: RunResult) => send({ answer: message.call, result }));
      return;
    }
    const pending = waiting.get(message.id!)!;
    waiting.delete(message.id!);
    if (message.error !== undefined) pending.reject(new Error(message.error));
    else pending.resolve(message.result!);
  });
  await started;

  const pid = String(child.pid);
  return {
    path: (path) => `/proc/${pid}/root${path}`,
    run: (command, args, input) => execFileSync('nsenter', ['-t', pid, '-m', command, ...args], { input, stdio: ['pipe', 'pipe', 'pipe'] }).toString(),
    spawn: (command, args) => spawn('nsenter', ['-t', pid, '-m', command, ...args], { stdio: 'ignore' }),
    act(executor, command, options = {}) {
      runner = options.runner;
      const id = requests++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        send({ id, executor, command, priorSnapshot: options.priorSnapshot, proxy: options.runner !== undefined });
      });
    },
    async close() {
      child.stdin!.end();
      child.kill('SIGKILL');
      await exited;
      rmdirSync(base);
    },
  };
}
