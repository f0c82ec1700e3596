import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Executor } from './executor.ts';

/** What an investigation asks a device for: what runs, what starts things, and the files its alerts name. */
export interface EvidenceReport {
  processes: Array<{ pid: number; exe: string; sha256: string | null; commandLine: string }>;
  /** Cron lines, systemd units and kernel modules: each with the file it comes from and its text. */
  persistence: Array<{ kind: 'cron' | 'systemd' | 'kernel_module'; source: string; text: string }>;
  files: Array<{ path: string; sha256: string | null }>;
  /** What did not fit in the result and was left out. */
  leftOut: number;
}

const MAX_HASHED_BYTES = 64 * 1024 * 1024;
/** The result travels as an action's output, which the server keeps up to 64 KiB. */
const MAX_OUTPUT = 60_000;
/** Executables the operating system's packages install: their processes are not evidence of anything. */
const SYSTEM_EXECUTABLES = /^\/(usr\/(s?bin|lib|libexec)|s?bin|lib(32|64)?)\//;
const CRON_FILES = ['/etc/crontab'];
const CRON_DIRS = ['/etc/cron.d', '/var/spool/cron/crontabs'];
/** Where administrators and installers put their own units (packages' units live under /usr/lib). */
const SYSTEMD_DIRS = ['/etc/systemd/system', '/run/systemd/system'];

function hashFile(path: string): string | null {
  try {
    const stat = statSync(path);
    if (!stat.isFile() || stat.size > MAX_HASHED_BYTES) return null;
    return createHash('sha256').update(readFileSync(path)).digest('hex');
  } catch {
    return null;
  }
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function processes(): EvidenceReport['processes'] {
  const found: EvidenceReport['processes'] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // A deleted executable reads back as "… (deleted)": its hash comes from the process's own mapping.
      const exe = readlinkSync(`/proc/${entry}/exe`);
      if (SYSTEM_EXECUTABLES.test(exe)) continue;
      const commandLine = (read(`/proc/${entry}/cmdline`) ?? '').split('\0').filter(Boolean).join(' ').slice(0, 4096);
      found.push({ pid: Number(entry), exe, sha256: hashFile(`/proc/${entry}/exe`), commandLine });
    } catch {
      // a kernel thread, or the process ended
    }
  }
  return found;
}

function persistence(): EvidenceReport['persistence'] {
  const entries: EvidenceReport['persistence'] = [];
  const add = (kind: EvidenceReport['persistence'][number]['kind'], source: string, text: string): void => void entries.push({ kind, source, text: text.slice(0, 1024) });
  const cronFiles = [...CRON_FILES, ...CRON_DIRS.flatMap((dir) => (existsSync(dir) ? readdirSync(dir).map((name) => join(dir, name)) : []))];
  for (const file of cronFiles) {
    for (const line of (read(file) ?? '').split('\n')) if (line.trim() && !line.trim().startsWith('#')) add('cron', file, line);
  }
  for (const dir of SYSTEMD_DIRS.filter((d) => existsSync(d))) {
    for (const name of readdirSync(dir).filter((n) => n.endsWith('.service') || n.endsWith('.timer'))) {
      const text = read(join(dir, name));
      const exec = text?.split('\n').filter((l) => /^(ExecStart|ExecStartPre|Unit)=/.test(l.trim())).join('\n');
      if (exec) add('systemd', join(dir, name), exec);
    }
  }
  for (const line of (read('/proc/modules') ?? '').split('\n')) if (line) add('kernel_module', '/proc/modules', line.split(' ')[0]!);
  return entries;
}

/**
 * Collects evidence for an automated investigation and changes nothing:
 * running processes with their executables' hashes, persistence (cron,
 * systemd services and timers, kernel modules), and the current hash of
 * each file the alerts named (`parameters.paths`, newline-separated).
 */
export const collectEvidence: Executor = async (ctx) => {
  const paths = String(ctx.command.parameters.paths ?? '').split('\n').filter((p) => p.startsWith('/')).slice(0, 100);
  const report: EvidenceReport = {
    files: paths.map((path) => ({ path, sha256: hashFile(path) })),
    processes: processes(),
    persistence: persistence(),
    leftOut: 0,
  };
  // The files asked for always fit; past the limit, kernel modules go first, then processes, then the rest.
  while (JSON.stringify(report).length > MAX_OUTPUT) {
    const module = report.persistence.findIndex((p) => p.kind === 'kernel_module');
    if (module >= 0) report.persistence.splice(module, 1);
    else if (report.processes.length > 0) report.processes.pop();
    else report.persistence.pop();
    report.leftOut += 1;
  }
  return { output: JSON.stringify(report) };
};
