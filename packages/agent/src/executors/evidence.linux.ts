import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { EVIDENCE_MAX_PATHS, type EvidenceReport } from '@quell/contracts';
import { Folder } from '../safe-fs.linux.ts';
import { ExecutionError, type Executor } from './executor.ts';

/** What an investigation asks a device for: the one schema the server checks the answer against. */
export type { EvidenceReport };

/** Limits on what one request may ask and what one answer may hold: each loop below ends by construction. */
export const EVIDENCE_LIMITS = {
  hashedBytes: 64 * 1024 * 1024,
  processes: 4096,
  /** Cron files and unit files read, and the bytes read of each. */
  persistenceFiles: 1000,
  persistenceFileBytes: 256 * 1024,
  /** The result travels as an action's output, which the server takes whole only up to ACTION_OUTPUT_MAX_CHARS (64 Ki characters). */
  outputChars: 60_000,
} as const;

/** Executables the operating system's packages install: their processes are not evidence of anything. */
const SYSTEM_EXECUTABLES = /^\/(usr\/(s?bin|lib|libexec)|s?bin|lib(32|64)?)\//;
const CRON_FILES = ['/etc/crontab'];
const CRON_DIRS = ['/etc/cron.d', '/var/spool/cron/crontabs'];
/** Where administrators and installers put their own units (packages' units live under /usr/lib). */
const SYSTEMD_DIRS = ['/etc/systemd/system', '/run/systemd/system'];
/** A user's files read at each login, and the keys that let one in (remove_persistence edits them by line). */
const USER_STARTUP_FILES = ['.bashrc', '.profile', '.bash_profile', '.bash_login', '.bash_logout', '.zshrc', '.zprofile', '.ssh/authorized_keys', '.ssh/authorized_keys2'];
/** A path in a temp, shared-memory or download folder, where droppers land (the server's verdict rules name the same folders). */
const NAMES_TEMP_PATH = /(^|[\s'"=:;&|(])(\/tmp\/|\/var\/tmp\/|\/dev\/shm\/|\/home\/[^/\s]+\/Downloads\/|\/root\/Downloads\/)/;

/**
 * Where startup persistence lives: files edited by line only (read by every
 * login or start, or a user's), and files that may go whole (drop-ins,
 * ld.so.preload), whose every line is reported once one names a temp path.
 */
export interface StartupLayout { lineOnly: readonly string[]; whole: readonly string[]; dropInDirs: readonly string[]; homes: readonly string[] }
export const startupLayout = (): StartupLayout => ({
  lineOnly: ['/etc/profile', '/etc/bash.bashrc', '/etc/environment', '/etc/rc.local'],
  whole: ['/etc/ld.so.preload'],
  dropInDirs: ['/etc/profile.d'],
  homes: ['/root', ...listDir('/home')],
});

/**
 * The files the alerts named, newline-separated in `parameters.paths`, at
 * most EVIDENCE_MAX_PATHS. A path that is not absolute and canonical is
 * answered with a note instead of a hash, like a file that is missing.
 */
export function requestedPaths(value: unknown): string[] {
  if (value === undefined) return [];
  if (typeof value !== 'string') throw new ExecutionError('parameters.paths must be newline-separated absolute paths');
  const paths = [...new Set(value.split('\n').filter(Boolean))];
  if (paths.length > EVIDENCE_MAX_PATHS) throw new ExecutionError(`at most ${EVIDENCE_MAX_PATHS} paths per request, not ${paths.length}`);
  return paths;
}

/** A file's hash, read without following links and only from ordinary file systems; or why there is none. */
async function fileEvidence(path: string): Promise<EvidenceReport['files'][number]> {
  let where: { folder: Folder; name: string } | null = null;
  try {
    where = Folder.ofFile(path);
    const file = where.folder.openFile(where.name);
    try {
      file.assertOrdinary();
      return { path, sha256: await file.sha256(EVIDENCE_LIMITS.hashedBytes) };
    } finally {
      file.close();
    }
  } catch (error) {
    return { path, sha256: null, note: (error as Error).message.slice(0, 300) };
  } finally {
    where?.folder.close();
  }
}

/** The text of a small file, read without following links; null when it cannot be. */
async function smallFile(path: string): Promise<string | null> {
  let where: { folder: Folder; name: string } | null = null;
  try {
    where = Folder.ofFile(path);
    const file = where.folder.openFile(where.name);
    try {
      const chunks: Buffer[] = [];
      await file.readAll(EVIDENCE_LIMITS.persistenceFileBytes, (chunk) => void chunks.push(Buffer.from(chunk)));
      return Buffer.concat(chunks).toString('utf8');
    } finally {
      file.close();
    }
  } catch {
    return null;
  } finally {
    where?.folder.close();
  }
}

/** Hashes a running process's executable through /proc (deleted ones too), off the main thread and within the size limit. */
async function executableHash(pid: string): Promise<string | null> {
  try {
    const handle = await open(`/proc/${pid}/exe`, 'r');
    try {
      const { size } = await handle.stat();
      if (size > EVIDENCE_LIMITS.hashedBytes) return null;
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(1024 * 1024);
      for (let total = 0; total <= size;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
        if (bytesRead === 0) return hash.digest('hex');
        total += bytesRead;
        hash.update(buffer.subarray(0, bytesRead));
      }
      return null; // it grew while being read
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
}

async function processes(): Promise<EvidenceReport['processes']> {
  const found: EvidenceReport['processes'] = [];
  const hashes = new Map<string, Promise<string | null>>();
  const pids = readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).slice(0, EVIDENCE_LIMITS.processes);
  for (const pid of pids) {
    let exe: string;
    try {
      // A deleted executable reads back as "… (deleted)": its hash comes from the process's own mapping.
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      continue; // a kernel thread, or the process ended
    }
    if (SYSTEM_EXECUTABLES.test(exe)) continue;
    if (!hashes.has(exe)) hashes.set(exe, executableHash(pid));
    const commandLine = ((await smallProcFile(`/proc/${pid}/cmdline`)) ?? '').split('\0').filter(Boolean).join(' ').slice(0, 4096);
    found.push({ pid: Number(pid), exe, sha256: await hashes.get(exe)!, commandLine });
  }
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
 * The lines of startup files that name something in a temp or download
 * folder: a shell line that runs it, a key whose forced command is it, a
 * preloaded library there. Of a drop-in file or ld.so.preload every line,
 * so that the server can tell whether the whole file is the attacker's.
 * At most EVIDENCE_LIMITS.persistenceFiles files are read.
 */
export async function startupEntries(layout: StartupLayout): Promise<EvidenceReport['persistence']> {
  const entries: EvidenceReport['persistence'] = [];
  const files = [
    ...[...layout.lineOnly, ...layout.homes.flatMap((home) => USER_STARTUP_FILES.map((name) => join(home, name)))].map((path) => ({ path, whole: false })),
    ...[...layout.whole, ...layout.dropInDirs.flatMap(listDir)].map((path) => ({ path, whole: true })),
  ].slice(0, EVIDENCE_LIMITS.persistenceFiles);
  for (const { path, whole } of files) {
    const lines = ((await smallFile(path)) ?? '').split('\n').filter((line) => line.trim() && !line.trim().startsWith('#'));
    const naming = lines.filter((line) => NAMES_TEMP_PATH.test(line));
    if (naming.length === 0) continue;
    for (const line of whole ? lines : naming) entries.push({ kind: 'startup', source: path, text: line.slice(0, 1024) });
  }
  return entries;
}

async function persistence(): Promise<EvidenceReport['persistence']> {
  const entries: EvidenceReport['persistence'] = [];
  const add = (kind: EvidenceReport['persistence'][number]['kind'], source: string, text: string): void => void entries.push({ kind, source, text: text.slice(0, 1024) });
  const cronFiles = [...CRON_FILES, ...CRON_DIRS.flatMap(listDir)].slice(0, EVIDENCE_LIMITS.persistenceFiles);
  for (const file of cronFiles) {
    for (const line of ((await smallFile(file)) ?? '').split('\n')) if (line.trim() && !line.trim().startsWith('#')) add('cron', file, line);
  }
  const unitFiles = SYSTEMD_DIRS.flatMap(listDir).filter((p) => p.endsWith('.service') || p.endsWith('.timer')).slice(0, EVIDENCE_LIMITS.persistenceFiles);
  for (const file of unitFiles) {
    const exec = (await smallFile(file))?.split('\n').filter((l) => /^(ExecStart|ExecStartPre|Unit)=/.test(l.trim())).join('\n');
    if (exec) add('systemd', file, exec);
  }
  entries.push(...await startupEntries(startupLayout()));
  for (const line of ((await smallProcFile('/proc/modules')) ?? '').split('\n')) if (line) add('kernel_module', '/proc/modules', line.split(' ')[0]!);
  return entries;
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

/**
 * Collects evidence for an automated investigation and changes nothing:
 * running processes with their executables' hashes, persistence (cron,
 * systemd services and timers, startup lines naming temp folders, kernel modules), and the current hash of
 * each file the alerts named (`parameters.paths`, newline-separated).
 * Files are read without following links, within size limits, off the
 * agent's main thread.
 */
export const collectEvidence: Executor = async (ctx) => {
  const paths = requestedPaths(ctx.command.parameters.paths);
  const files: EvidenceReport['files'] = [];
  for (const path of paths) files.push(await fileEvidence(path));
  const report: EvidenceReport = { files, processes: await processes(), persistence: await persistence(), leftOut: 0 };
  return { output: JSON.stringify(fitReport(report, EVIDENCE_LIMITS.outputChars)) };
};
