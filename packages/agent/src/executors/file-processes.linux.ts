import { lstatSync, readdirSync, readFileSync, type Stats, statSync } from 'node:fs';
import { lstatFrom } from '../safe-fs.linux.ts';

/** Why a quarantine ended a process: quarantine_file ends only those that run it, stop and quarantine all four. */
export type EndReason = 'runs it' | 'has it open' | 'has it mapped' | 'names it on its command line';

export interface EndedProcess { pid: number; name: string; why: EndReason[] }

export const sameFile = (a: Stats | undefined, b: Stats): boolean => a !== undefined && a.dev === b.dev && a.ino === b.ino;

function statOf(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined; // the process ended, is a kernel thread, or the entry is gone
  }
}

/** The parent of every process now running, from /proc/PID/stat (the fields after the command name, which may hold anything). */
function processTable(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state !== 'Z' && state !== 'X') parents.set(Number(entry), Number(ppid));
    } catch {
      // the process ended meanwhile
    }
  }
  return parents;
}

/**
 * Processes never ended with a file: the agent, every process above it up
 * to PID 1 (ending one could take the agent or the system down), and every
 * process the agent started itself (its antivirus scanner or its archiver
 * may be reading the very file, and they end on their own).
 */
function spared(parents: ReadonlyMap<number, number>): Set<number> {
  const keep = new Set<number>([1, process.pid]);
  for (let pid = parents.get(process.pid); pid !== undefined && pid > 0 && !keep.has(pid); pid = parents.get(pid)) keep.add(pid);
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const below = [process.pid];
  for (let pid = below.pop(); pid !== undefined; pid = below.pop()) {
    for (const child of children.get(pid) ?? []) {
      if (!keep.has(child)) {
        keep.add(child);
        below.push(child);
      }
    }
  }
  return keep;
}

/** The device number glibc's makedev() builds from the major and minor of /proc/PID/maps, the way stat reports it. */
const deviceNumber = (major: number, minor: number): number =>
  Math.floor(major / 0x1000) * 2 ** 44 + Math.floor(minor / 0x100) * 2 ** 20 + (major % 0x1000) * 0x100 + (minor % 0x100);

function holdsOpen(pid: number, file: Stats): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => sameFile(statOf(`/proc/${pid}/fd/${fd}`), file));
}

/**
 * Mapped (a library, or a file read through mmap), after its descriptor
 * may have been closed: /proc/PID/maps by inode, then the mapping itself
 * through /proc/PID/map_files (the device as stat reports it), or the
 * device printed in maps where map_files cannot be read.
 */
function holdsMapped(pid: number, file: Stats): boolean {
  let maps: string;
  try {
    maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
  } catch {
    return false;
  }
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+-[0-9a-f]+) \S+ \S+ ([0-9a-f]+):([0-9a-f]+) (\d+)/.exec(line);
    if (!m || Number(m[4]) !== file.ino) continue;
    const mapped = statOf(`/proc/${pid}/map_files/${m[1]}`);
    if (mapped ? sameFile(mapped, file) : deviceNumber(parseInt(m[2]!, 16), parseInt(m[3]!, 16)) === file.dev) return true;
  }
  return false;
}

/** Command-line arguments looked at per process, and their longest length: an interpreter names its script among the first few. */
const MAX_ARGUMENTS = 64;
const MAX_ARGUMENT_LENGTH = 4096;

/**
 * An argument of the process's command line is this file (`sh /tmp/x.sh`,
 * `python3 x.py`): resolved as the process would, a relative one from its
 * working folder (/proc/PID/cwd), an absolute one from its root
 * (/proc/PID/root), and compared by device and inode. A plain lstat sorts
 * out the arguments that are not the file; a match is confirmed by a walk
 * that follows no link, so a path through a link the agent did not check
 * never counts.
 */
function namesOnCommandLine(pid: number, file: Stats): boolean {
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false;
  }
  const base = `/proc/${pid}/cwd`;
  const root = `/proc/${pid}/root`;
  return cmdline.split('\0').slice(0, MAX_ARGUMENTS).some((arg) => {
    if (arg === '' || arg.length > MAX_ARGUMENT_LENGTH) return false;
    let seen: Stats | undefined;
    try {
      seen = lstatSync(arg.startsWith('/') ? `${root}${arg}` : `${base}/${arg}`, { throwIfNoEntry: false });
    } catch {
      return false;
    }
    if (!sameFile(seen, file)) return false;
    return sameFile(lstatFrom(base, root, arg), file);
  });
}

/**
 * The processes to end with the file: those whose executable is this very
 * file (device and inode) and, for stop and quarantine, also those that
 * hold it open or mapped and interpreters whose command line names it.
 */
function processesUsing(file: Stats, everything: boolean): EndedProcess[] {
  const parents = processTable();
  const keep = spared(parents);
  const found: EndedProcess[] = [];
  for (const pid of parents.keys()) {
    if (keep.has(pid)) continue;
    const why: EndReason[] = [];
    if (sameFile(statOf(`/proc/${pid}/exe`), file)) why.push('runs it');
    if (everything) {
      if (holdsOpen(pid, file)) why.push('has it open');
      if (holdsMapped(pid, file)) why.push('has it mapped');
      if (namesOnCommandLine(pid, file)) why.push('names it on its command line');
    }
    if (why.length === 0) continue;
    let name = '?';
    try {
      name = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      // ended meanwhile: it is still reported, it was found using the file
    }
    found.push({ pid, name, why });
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Sweeps of /proc: a process ended may have started others using the file just before. */
const END_ROUNDS = 5;
/** How long ended processes are given to be gone before the file moves. */
const END_WAIT_MS = 2000;

/** Ends (SIGKILL) the processes using the file, sweep after sweep until none is found; returns them, and those still there. */
export async function endProcessesUsing(file: Stats, everything: boolean): Promise<{ ended: EndedProcess[]; stillRunning: number[] }> {
  const ended: EndedProcess[] = [];
  for (let round = 0; round < END_ROUNDS; round++) {
    const found = processesUsing(file, everything).filter((p) => !ended.some((e) => e.pid === p.pid));
    if (found.length === 0) break;
    for (const { pid } of found) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    ended.push(...found);
    const deadline = Date.now() + END_WAIT_MS;
    while (found.some((p) => alive(p.pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { ended, stillRunning: ended.filter((p) => alive(p.pid)).map((p) => p.pid) };
}
