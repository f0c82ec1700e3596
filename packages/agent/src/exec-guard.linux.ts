import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import pLimit from 'p-limit';
import { type Detection, detectOpened } from './executors/antivirus-scan.linux.ts';

/** Where executions are checked unless the agent is told otherwise: the mounts that hold these paths. */
export const DEFAULT_GUARDED_PATHS = ['/', '/usr', '/usr/local', '/opt', '/home', '/root', '/tmp', '/var', '/var/tmp', '/dev/shm', '/srv'] as const;

/** Files read and hashed at once for the held executions (each read whole, up to the antivirus's size limit). */
const FILES_AT_ONCE = 4;

/** The helper built beside the agent's bundle (`npm run build:agent`), found from the bundle or from the sources. */
export function execGuardHelper(): string | null {
  const candidates = [new URL('./quell-exec-guard', import.meta.url), new URL('../dist/quell-exec-guard', import.meta.url)];
  return candidates.map((url) => url.pathname).find((path) => existsSync(path)) ?? null;
}

export interface ExecGuard {
  /** Forget every verdict given so far: the block list changed. */
  listsChanged(): void;
  close(): void;
}

/** What the guard refused: the file, what matched, and the process that tried to run it. */
export interface RefusedExecution { detection: Extract<Detection, { kind: 'malware' }>; pid: number; process: string }

/**
 * The exec permission check: the helper holds every execution of a file on
 * the guarded mounts until the agent has looked at the file (its hashes
 * against the block indicators and the built-in signatures, as the
 * antivirus does), and refuses the ones that match; its verdicts are
 * cached by file identity until the block list changes. Executions are
 * answered each as its file is looked at, a few files at a time.
 */
export async function startExecGuard(options: {
  helper: string;
  paths: readonly string[];
  blocked: () => ReadonlySet<string>;
  /** Why a file must never be refused (the system shell, a login shell, libc, the agent's own files: what the agent never quarantines), or null. */
  spared: (path: string, id: { dev: number; ino: number }) => string | null;
  onRefused: (refused: RefusedExecution) => void;
  /** A blocked file let run all the same, and why. */
  onSpared: (path: string, reason: string) => void;
  onError: (error: Error) => void;
}): Promise<ExecGuard> {
  const paths = options.paths.filter((path) => existsSync(path));
  const child: ChildProcess = spawn(options.helper, paths, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const answer = (line: string): void => void child.stdin!.write(`${line}\n`);
  const lines = createInterface({ input: child.stdout! });
  const inTurn = pLimit(FILES_AT_ONCE);

  async function verdict(fd: string, pid: number): Promise<'allow' | 'deny'> {
    const held = `/proc/${child.pid}/fd/${fd}`;
    const path = readlinkSync(held);
    const { dev, ino } = statSync(held);
    const detection = await detectOpened(await open(held, 'r'), path, { blocked: options.blocked() });
    if (detection?.kind !== 'malware') return 'allow';
    // Refusing these would do the endpoint more harm than the file: they run, and the log says why.
    const reason = options.spared(path, { dev, ino });
    if (reason !== null) {
      options.onSpared(path, reason);
      return 'allow';
    }
    const comm = (() => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return 'unknown';
      }
    })();
    options.onRefused({ detection, pid, process: comm });
    return 'deny';
  }

  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the exec guard stopped (${code}): ${stderr.trim() || 'no reason given'}`)));
    lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`the exec guard said ${line}`))));
  });
  child.removeAllListeners('exit');
  child.on('exit', (code) => options.onError(new Error(`the exec guard stopped (${code}): ${stderr.trim() || 'no reason given'}`)));
  lines.on('line', (line) => {
    const [word, id, fd, pid] = line.split(' ');
    if (word !== 'ask' || !id || !fd || !pid) return;
    // A file that cannot be read is let through: the guard refuses what it knows to be blocked, nothing else.
    void inTurn(() => verdict(fd, Number(pid))).catch((error: unknown) => {
      options.onError(error as Error);
      return 'allow' as const;
    }).then((said) => answer(`${id} ${said}`));
  });
  return {
    listsChanged: () => answer('flush'),
    close: () => void child.kill(),
  };
}
