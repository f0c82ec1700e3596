import { readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CRON_LOCATIONS, EVIDENCE_MAX_PATHS, type EvidenceReport, type FileOwner, STARTUP_LOCATIONS } from '@quell/contracts';
import { type GuardFacts, agentFileIds, idKey, systemGuardFacts } from '../guards.linux.ts';
import { type DigestName, Folder, digesting, readSmallFile } from '../safe-fs.linux.ts';
import { LITERAL_PATH, type PackageRecord, packageRecords } from './package-records.linux.ts';
import { ExecutionError, type ExecutionContext, type Executor } from './executor.ts';

/** What an investigation asks a device for: the one schema the server checks the answer against. */
export type { EvidenceReport };

/** Limits on what one request may ask and what one answer may hold: each loop below ends by construction. */
export const EVIDENCE_LIMITS = {
  hashedBytes: 64 * 1024 * 1024,
  processes: 4096,
  /** A process's ancestors reported, from its parent up. */
  ancestors: 64,
  /** Cron files and unit files read, and the bytes read of each. */
  persistenceFiles: 1000,
  persistenceFileBytes: 256 * 1024,
  /** The result travels as an action's output, which the server takes whole only up to ACTION_OUTPUT_MAX_CHARS (64 Ki characters). */
  outputChars: 60_000,
  /** Distinct files and executables whose package is looked up, per request: one dpkg-query (and one rpm) call holds them all. */
  packageLookups: 256,
} as const;

/** Each file is reported with all three; a package manager recorded one of them. */
const DIGESTS = ['sha256', 'sha1', 'md5'] as const satisfies readonly DigestName[];
type Digests = Record<(typeof DIGESTS)[number], string>;

/** Executables the operating system's packages install: their processes are not evidence of anything. */
const SYSTEM_EXECUTABLES = /^\/(usr\/(s?bin|lib|libexec)|s?bin|lib(32|64)?)\//;
/** Where administrators and installers put their own units (packages' units live under /usr/lib). */
const SYSTEMD_DIRS = ['/etc/systemd/system', '/run/systemd/system'];
/**
 * A path where droppers land: a temp, shared-memory or download folder (the
 * server's verdict rules name the same folders), or a hidden folder — one
 * whose name starts with a dot.
 */
const NAMES_DROP_PATH = /(^|[\s'"=:;&|(])(\/tmp\/|\/var\/tmp\/|\/dev\/shm\/|\/home\/[^/\s]+\/Downloads\/|\/root\/Downloads\/|\/[^\s'"]*\/\.[^\s/'".][^\s/'"]*\/)/;

/**
 * Where startup persistence lives (STARTUP_LOCATIONS): files edited by line
 * only, and files that may go whole (drop-ins, ld.so.preload), whose every
 * line is reported once one names a drop path.
 */
export interface StartupLayout { lineOnly: readonly string[]; whole: readonly string[]; dropInDirs: readonly string[]; homes: readonly string[] }
export const startupLayout = (): StartupLayout => ({
  lineOnly: STARTUP_LOCATIONS.lineOnly,
  whole: STARTUP_LOCATIONS.fileOrLine,
  dropInDirs: STARTUP_LOCATIONS.dropInDirs,
  homes: ['/root', ...listDir('/home')],
});

/**
 * Where evidence is read from besides /proc and the fixed system paths:
 * startup files, the package databases, and the agent's own program and
 * interpreter (its directory is the command's `agentDir`).
 */
export interface EvidenceLayout {
  startup: StartupLayout;
  /** dpkg's database (`dpkg-query --admindir`). */
  dpkgAdmindir: string;
  /** rpm's database (`rpm --dbpath`); rpm's own default when absent. */
  rpmDbPath?: string;
  agent: Pick<GuardFacts, 'agentScript' | 'agentInterpreter'>;
}
export const evidenceLayout = (): EvidenceLayout => ({ startup: startupLayout(), dpkgAdmindir: '/var/lib/dpkg', agent: systemGuardFacts() });

/**
 * The files the alerts named (`parameters.paths`), each once, at most
 * EVIDENCE_MAX_PATHS. A path that is not absolute and canonical is
 * answered with a note instead of a hash, like a file that is missing.
 */
export function requestedPaths(value: readonly string[] | undefined): string[] {
  const paths = [...new Set(value ?? [])];
  if (paths.length > EVIDENCE_MAX_PATHS) throw new ExecutionError(`at most ${EVIDENCE_MAX_PATHS} paths per request, not ${paths.length}`);
  return paths;
}

/** A file as the agent read it: the path it was reached by, the file itself (device and inode), and its bytes' hashes when it could hash them. */
interface ReadFile { path: string; id: { dev: number; ino: number }; digests: Digests | null }

/** A file's hashes, read once without following links and only from ordinary file systems; or why there are none. */
async function fileEvidence(path: string): Promise<{ entry: EvidenceReport['files'][number]; read?: ReadFile }> {
  let where: { folder: Folder; name: string } | null = null;
  try {
    where = Folder.ofFile(path);
    const file = where.folder.openFile(where.name);
    try {
      file.assertOrdinary();
      const digests = await file.digests(DIGESTS, EVIDENCE_LIMITS.hashedBytes);
      return { entry: { path, ...digests }, read: { path, id: file.stat, digests } };
    } finally {
      file.close();
    }
  } catch (error) {
    return { entry: { path, sha256: null, note: (error as Error).message.slice(0, 300) } };
  } finally {
    where?.folder.close();
  }
}

/**
 * A running process's executable as the process has it (deleted ones too,
 * through /proc), hashed off the main thread; its hashes are absent when it
 * is over the size limit or grew while read, and the whole is null when it
 * cannot be opened.
 */
async function readExecutable(pid: string): Promise<Omit<ReadFile, 'path'> | null> {
  try {
    const handle = await open(`/proc/${pid}/exe`, 'r');
    try {
      const stat = await handle.stat();
      const id = { dev: stat.dev, ino: stat.ino };
      if (stat.size > EVIDENCE_LIMITS.hashedBytes) return { id, digests: null };
      const hashing = digesting(DIGESTS);
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (let total = 0; total <= stat.size;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
        if (bytesRead === 0) return { id, digests: hashing.digest() };
        total += bytesRead;
        hashing.update(buffer.subarray(0, bytesRead));
      }
      return { id, digests: null }; // it grew while being read
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

/** The processes not running a system executable, each with the executable as read, for its owner. */
/** A process's parent, from /proc/PID/stat: the field after the command name, which may itself hold spaces and parentheses. */
async function parentOf(pid: string): Promise<number | null> {
  const stat = await smallProcFile(`/proc/${pid}/stat`);
  const fields = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ppid = Number(fields?.[1]);
  return Number.isSafeInteger(ppid) ? ppid : null;
}

/** Its parent, its parent's parent… up to the first process, at most EVIDENCE_LIMITS.ancestors of them. */
function ancestry(pid: number, parents: ReadonlyMap<number, number>): number[] {
  const chain: number[] = [];
  for (let at = parents.get(pid); at !== undefined && at > 0 && chain.length < EVIDENCE_LIMITS.ancestors && !chain.includes(at); at = parents.get(at)) chain.push(at);
  return chain;
}

async function processes(): Promise<Array<{ entry: EvidenceReport['processes'][number]; read: ReadFile | null }>> {
  const found: Array<{ entry: EvidenceReport['processes'][number]; read: ReadFile | null }> = [];
  const executables = new Map<string, ReturnType<typeof readExecutable>>();
  const parents = new Map<number, number>();
  const pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).slice(0, EVIDENCE_LIMITS.processes);
  for (const pid of pids) {
    // Every process's parent, system ones too: a shell between two of the reported ones keeps them in one tree.
    const ppid = await parentOf(pid);
    if (ppid !== null) parents.set(Number(pid), ppid);
    let exe: string;
    try {
      // A deleted executable reads back as "… (deleted)": its hash comes from the process's own mapping.
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      continue; // a kernel thread, or the process ended
    }
    if (SYSTEM_EXECUTABLES.test(exe)) continue;
    if (!executables.has(exe)) executables.set(exe, readExecutable(pid));
    const commandLine = ((await smallProcFile(`/proc/${pid}/cmdline`)) ?? '').split('\0').filter(Boolean).join(' ').slice(0, 4096);
    const read = await executables.get(exe)!;
    found.push({ entry: { pid: Number(pid), exe, sha256: read?.digests?.sha256 ?? null, commandLine }, read: read && { path: exe, ...read } });
  }
  for (const { entry } of found) entry.ancestors = ancestry(entry.pid, parents);
  return found;
}

async function smallProcFile(path: string): Promise<string | null> {
  try {
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(8192);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort().map((name) => join(dir, name));
  } catch {
    return [];
  }
}

/**
 * The lines of startup files that name something in a temp, download or
 * hidden folder: a shell line that runs it, a key whose forced command is
 * it, a preloaded library, a udev rule, an apt hook, an autostart entry. Of
 * a drop-in file or ld.so.preload every line, so that the server can tell
 * whether the whole file is the attacker's.
 */
export async function startupEntries(layout: StartupLayout): Promise<EvidenceReport['persistence']> {
  return linesNamingDropPaths('startup', [
    ...[...layout.lineOnly, ...layout.homes.flatMap((home) => STARTUP_LOCATIONS.userLineOnly.map((name) => join(home, name)))].map((path) => ({ path, whole: false })),
    ...[
      ...layout.whole, ...layout.dropInDirs.flatMap(listDir),
      ...layout.homes.flatMap((home) => STARTUP_LOCATIONS.userDropInDirs.flatMap((dir) => listDir(join(home, dir)))),
    ].map((path) => ({ path, whole: true })),
  ]);
}

/**
 * The lines (not comments) of the files that name a drop path: those lines,
 * or every line of a file that may go `whole`. At most
 * EVIDENCE_LIMITS.persistenceFiles files are read.
 */
async function linesNamingDropPaths(kind: EvidenceReport['persistence'][number]['kind'], files: ReadonlyArray<{ path: string; whole: boolean }>): Promise<EvidenceReport['persistence']> {
  const entries: EvidenceReport['persistence'] = [];
  for (const { path, whole } of files.slice(0, EVIDENCE_LIMITS.persistenceFiles)) {
    const lines = ((await readSmallFile(path, EVIDENCE_LIMITS.persistenceFileBytes)) ?? '').split('\n').filter((line) => line.trim() && !line.trim().startsWith('#'));
    const naming = lines.filter((line) => NAMES_DROP_PATH.test(line));
    if (naming.length === 0) continue;
    for (const line of whole ? lines : naming) entries.push({ kind, source: path, text: line.slice(0, 1024) });
  }
  return entries;
}

async function persistence(layout: StartupLayout): Promise<EvidenceReport['persistence']> {
  const entries: EvidenceReport['persistence'] = [];
  const add = (kind: EvidenceReport['persistence'][number]['kind'], source: string, text: string): void => void entries.push({ kind, source, text: text.slice(0, 1024) });
  const cronFiles = [CRON_LOCATIONS.crontab, ...[...CRON_LOCATIONS.fileDirs, CRON_LOCATIONS.userCrontabs].flatMap(listDir)].slice(0, EVIDENCE_LIMITS.persistenceFiles);
  for (const file of cronFiles) {
    for (const line of ((await readSmallFile(file, EVIDENCE_LIMITS.persistenceFileBytes)) ?? '').split('\n')) if (line.trim() && !line.trim().startsWith('#')) add('cron', file, line);
  }
  // run-parts scripts are whole shell scripts: those that name a drop path, every line of them.
  entries.push(...await linesNamingDropPaths('cron', CRON_LOCATIONS.scriptDirs.flatMap(listDir).map((path) => ({ path, whole: true }))));
  const unitFiles = SYSTEMD_DIRS.flatMap(listDir).filter((p) => p.endsWith('.service') || p.endsWith('.timer')).slice(0, EVIDENCE_LIMITS.persistenceFiles);
  for (const file of unitFiles) {
    const exec = (await readSmallFile(file, EVIDENCE_LIMITS.persistenceFileBytes))?.split('\n').filter((l) => /^(ExecStart|ExecStartPre|Unit)=/.test(l.trim())).join('\n');
    // Every timer, even one without Unit= (it starts the service of its own name).
    if (exec || file.endsWith('.timer')) add('systemd', file, exec ?? '');
  }
  entries.push(...await startupEntries(layout));
  for (const line of ((await smallProcFile('/proc/modules')) ?? '').split('\n')) if (line) add('kernel_module', '/proc/modules', line.split(' ')[0]!);
  return entries;
}

/** What a package manager recorded for a path: the package, and the digest it installed the file with (null when it keeps none). */
/**
 * Quell's, when the file is one of the agent's own (by device and inode);
 * else the package that installed its path, verified when the file as read
 * has the digest that package recorded (of the packages owning the path,
 * one it matches, else the first); else none.
 */
function ownerOf(read: ReadFile, agentFiles: ReadonlyMap<string, unknown>, records: ReadonlyMap<string, PackageRecord[]>): FileOwner | undefined {
  if (agentFiles.has(idKey(read.id))) return { kind: 'quell' };
  const candidates = records.get(read.path);
  if (!candidates?.length || read.digests === null) return undefined;
  const digests: readonly string[] = Object.values(read.digests);
  const matching = candidates.find((record) => record.digest !== null && digests.includes(record.digest));
  const { manager, name } = matching ?? candidates[0]!;
  return { kind: 'package', manager, name, verified: matching !== undefined };
}

/**
 * Drops entries until the report fits in `limit` characters: kernel modules
 * first, then processes, then other persistence, then files. Sizes are
 * counted once per entry, so this is one pass however large the report,
 * and it ends whatever the report holds.
 */
export function fitReport(report: EvidenceReport, limit: number): EvidenceReport {
  /** Room for `leftOut` to grow by a few digits as entries are counted out. */
  const margin = 16;
  let size = JSON.stringify(report).length;
  const drop = <T>(list: T[], keep: (entry: T) => boolean): T[] => {
    const kept: T[] = [];
    for (const entry of list) {
      if (size + margin > limit && !keep(entry)) {
        size -= JSON.stringify(entry).length + 1;
        report.leftOut += 1;
      } else kept.push(entry);
    }
    return kept;
  };
  // From the end of each list, so that what is kept is its beginning.
  const fromEnd = <T>(list: T[], keep: (entry: T) => boolean = () => false): T[] => drop([...list].reverse(), keep).reverse();
  report.persistence = fromEnd(report.persistence, (p) => p.kind !== 'kernel_module');
  report.processes = fromEnd(report.processes);
  report.persistence = fromEnd(report.persistence);
  report.files = fromEnd(report.files);
  return report;
}

/** The evidence of one request, whole: collectEvidence fits it to an action's output. */
export async function evidenceReport(ctx: ExecutionContext<'collect_evidence'>, layout: EvidenceLayout): Promise<EvidenceReport> {
  const files: Array<Awaited<ReturnType<typeof fileEvidence>>> = [];
  for (const path of requestedPaths(ctx.command.parameters.paths)) files.push(await fileEvidence(path));
  const running = await processes();
  const agentFiles = agentFileIds(ctx.agentDir, layout.agent);
  // The files asked for first, then the executables: the same paths the report lists, in its order.
  const lookups = [...new Set([...files, ...running].flatMap(({ read }) => (read?.digests && !agentFiles.has(idKey(read.id)) ? [read.path] : [])))]
    .filter((path) => LITERAL_PATH.test(path)).slice(0, EVIDENCE_LIMITS.packageLookups);
  const records = await packageRecords(lookups, layout);
  const withOwner = <T>({ entry, read }: { entry: T; read?: ReadFile | null }): T => {
    const owner = read && ownerOf(read, agentFiles, records);
    return owner ? { ...entry, owner } : entry;
  };
  return { files: files.map(withOwner), processes: running.map(withOwner), persistence: await persistence(layout.startup), leftOut: 0 };
}

/**
 * Collects evidence for an automated investigation and changes nothing:
 * running processes with their executables' hashes and ancestors,
 * persistence (cron lines, run-parts scripts naming drop paths, systemd
 * services and timers, startup lines naming drop paths, kernel modules), and the current SHA-256, SHA-1 and MD5 of each file the alerts
 * named (`parameters.paths`). Files are read once,
 * without following links, within size limits, off the agent's main
 * thread. A file or executable that is the agent's own is marked Quell's;
 * one an installed package put there (dpkg, else rpm) names the package
 * and whether it still has the digest the package recorded.
 */
export const collectEvidence: Executor<'collect_evidence'> = async (ctx) => {
  const report = await evidenceReport(ctx, evidenceLayout());
  return { output: JSON.stringify(fitReport(report, EVIDENCE_LIMITS.outputChars)) };
};
