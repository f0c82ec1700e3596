import { type BigIntStats, constants, type Dirent, readFileSync, type Stats } from 'node:fs';
import { type FileHandle, lstat, open, opendir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { ACTION_OUTPUT_MAX_CHARS, type AntivirusScanReport as ScanReport, type ScanFinding } from '@quell/contracts';
import { type DigestName, digesting } from '../safe-fs.linux.ts';
import { ExecutionError, type Executor } from './executor.ts';

/**
 * The EICAR test file's content. It is assembled at run time so that this
 * source file is not itself detected by scanners that look for the string.
 */
export const EICAR = ['X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR', '-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'].join('');

interface Signature { name: string; sha256: string; prefix?: Buffer }

/** Built-in signatures: a hash, and optionally bytes a file starts with. */
export const SIGNATURES: readonly Signature[] = [
  { name: 'EICAR-Test-File', sha256: '275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f', prefix: Buffer.from(EICAR, 'latin1') },
];
export const BLOCK_INDICATOR = 'Block indicator';

/** Where malware lands first: temporary and shared-memory directories, home directories, local binaries, cron. */
export const QUICK_SCAN_ROOTS = ['/tmp', '/var/tmp', '/dev/shm', '/home', '/root', '/usr/local/bin', '/etc/cron.d'] as const;
/** /dev/shm is listed on its own because the walk from / skips /dev. */
export const FULL_SCAN_ROOTS = ['/', '/dev/shm'] as const;

/** Kernel interfaces, not files: reading them is slow, endless or has side effects. */
const EXCLUDED_DIRS = new Set(['/proc', '/sys', '/dev']);
const VIRTUAL_FS = new Set([
  'proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs', 'configfs',
  'fusectl', 'pstore', 'bpf', 'mqueue', 'hugetlbfs', 'autofs', 'binfmt_misc', 'efivarfs', 'selinuxfs', 'rpc_pipefs', 'nsfs',
]);
/** Other machines' files: a device scan does not walk a file server. */
const NETWORK_FS = new Set(['nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'ceph', 'glusterfs', 'fuse.sshfs', '9p']);

const FINDINGS_MAX = 500;
const ERROR_SAMPLES_MAX = 20;
const READ_CHUNK = 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface AntivirusScanOptions {
  /** The mount table, to skip virtual and network file systems. */
  mountInfo: string;
  /** Larger files are counted and skipped: payloads that matter are far smaller. */
  maxFileBytes: number;
}

const SYSTEM: AntivirusScanOptions = { mountInfo: '/proc/self/mountinfo', maxFileBytes: 64 * 1024 * 1024 };

/** What a scan reports: the one schema the server checks the answer against. */
export type { ScanFinding, ScanReport };

/** `/proc/self/mountinfo` escapes space, tab, newline and backslash in mount points as octal. */
const unescapeMount = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** Mount point → file-system type; a later mount on the same point hides an earlier one. */
export function parseMountInfo(text: string): Map<string, string> {
  const mounts = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    const mountPoint = left?.split(' ')[4];
    const fsType = right?.split(' ')[0];
    if (mountPoint && fsType) mounts.set(unescapeMount(mountPoint), fsType);
  }
  return mounts;
}

function readMounts(path: string): Map<string, string> {
  try {
    return parseMountInfo(readFileSync(path, 'utf8'));
  } catch {
    return new Map(); // no mount table (e.g. /proc not mounted): the fixed exclusions still apply
  }
}

function blockHashes(value: readonly string[] | undefined): Set<string> {
  const hashes = (value ?? []).map((hash) => hash.toLowerCase());
  const bad = hashes.find((hash) => !SHA256_HEX.test(hash));
  if (bad !== undefined) throw new ExecutionError(`not a SHA-256 block indicator: ${JSON.stringify(bad)}`);
  return new Set(hashes);
}

/**
 * Makes a report fit in `limit` characters, since the server takes a report
 * whole or not at all: the error samples go first, then findings from the
 * end, each counted in `findingsLeftOut`. Sizes are counted once per entry.
 */
export function fitScanReport(report: ScanReport, limit: number): ScanReport {
  /** Room for `findingsLeftOut` to grow by a few digits. */
  const margin = 16;
  let size = JSON.stringify(report).length;
  while (size + margin > limit && report.errors.length > 0) size -= JSON.stringify(report.errors.pop()).length + 1;
  while (size + margin > limit && report.findings.length > 0) {
    size -= JSON.stringify(report.findings.pop()).length + 1;
    report.findingsLeftOut += 1;
  }
  return report;
}

/** What a scan command asks for: its kind and the folders it walks. */
export function scanRoots(scan: string | undefined, roots: readonly string[] | undefined): { kind: ScanReport['scan']; roots: string[] } {
  if (scan !== undefined && scan !== 'quick' && scan !== 'full') throw new ExecutionError(`scan must be "quick" or "full", not ${JSON.stringify(scan)}`);
  const custom = [...new Set(roots ?? [])];
  for (const root of custom) {
    if (!root.startsWith('/') || /\p{Cc}/u.test(root)) throw new ExecutionError(`not an absolute path to scan: ${JSON.stringify(root)}`);
  }
  if (custom.length) return { kind: 'custom', roots: custom };
  return scan === 'full' ? { kind: 'full', roots: [...FULL_SCAN_ROOTS] } : { kind: 'quick', roots: [...QUICK_SCAN_ROOTS] };
}

/** Opens without following a link, without blocking on a FIFO swapped in, and without touching the access time. */
async function openForScan(path: string): Promise<FileHandle> {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
  try {
    return await open(path, flags | constants.O_NOATIME);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    return open(path, flags); // O_NOATIME is only for the owner or root
  }
}

/** The hashes a block list needs: SHA-256 always, SHA-1 and MD5 only when it holds hashes of their length. */
function digestsFor(blocked: ReadonlySet<string>): DigestName[] {
  const lengths = new Set([...blocked].map((hash) => hash.length));
  return ['sha256', ...(lengths.has(40) ? ['sha1' as const] : []), ...(lengths.has(32) ? ['md5' as const] : [])];
}

const PREFIXED = SIGNATURES.filter((signature) => signature.prefix);
/** The first bytes of a file that the signatures' prefixes need. */
const HEAD_BYTES = Math.max(0, ...PREFIXED.map((signature) => signature.prefix!.length));

/** The built-in signature a file matches by its SHA-256 or its first bytes. */
const signatureOf = (sha256: string, head: Buffer): string | undefined =>
  SIGNATURES.find((candidate) => candidate.sha256 === sha256 || (candidate.prefix && head.subarray(0, candidate.prefix.length).equals(candidate.prefix)))?.name;

/**
 * Reads an open file to its end a chunk at a time into `buffer`, hashing as
 * it goes (other work runs between chunks, and no file is held in memory
 * whole): its digests, first bytes and length; null when it grew past
 * `maxFileBytes` while read.
 */
async function readHashing(handle: FileHandle, algorithms: DigestName[], maxFileBytes: number, buffer: Buffer): Promise<{ digests: Partial<Record<DigestName, string>> & { sha256: string }; head: Buffer; total: number } | null> {
  const hash = digesting(algorithms);
  const head: Buffer[] = [];
  let headLength = 0;
  let total = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    total += bytesRead;
    if (total > maxFileBytes) return null;
    hash.update(buffer.subarray(0, bytesRead));
    if (headLength < HEAD_BYTES) {
      head.push(Buffer.from(buffer.subarray(0, Math.min(bytesRead, HEAD_BYTES - headLength))));
      headLength += head.at(-1)!.length;
    }
  }
  return { digests: hash.digest(), head: Buffer.concat(head), total };
}

/** Whether any of a file's hashes is blocked. */
const isBlocked = (digests: Partial<Record<DigestName, string>>, blocked: ReadonlySet<string>): boolean => listedHash(digests, blocked) !== undefined;

/** The first of a file's hashes that is in `list`. */
const listedHash = (digests: Partial<Record<DigestName, string>>, list: ReadonlySet<string>): string | undefined =>
  [digests.sha256, digests.sha1, digests.md5].find((hash) => hash !== undefined && list.has(hash));

/** What the on-access antivirus found in one file: malware to quarantine, or a file an audit indicator names, to report only. */
export type Detection =
  | { kind: 'malware'; finding: ScanFinding; /** The block indicator's hash, when that is what matched. */ indicator?: string }
  | { kind: 'audit'; path: string; sha256: string; indicator: string };

/**
 * Whether one file is malware: its SHA-256 against the built-in signatures,
 * any of its hashes against the block indicators, and its first bytes
 * against the signatures'; or else whether an audit indicator names it.
 * Null for a clean file, or one that is not a regular file within the size limit.
 */
export async function detectFile(path: string, lists: { blocked: ReadonlySet<string>; audited?: ReadonlySet<string> }, maxFileBytes = SYSTEM.maxFileBytes): Promise<Detection | null> {
  return detectOpened(await openForScan(path), path, lists, maxFileBytes);
}

/** The same for a file already open (closed here), known by `path`. */
export async function detectOpened(handle: FileHandle, path: string, lists: { blocked: ReadonlySet<string>; audited?: ReadonlySet<string> }, maxFileBytes = SYSTEM.maxFileBytes): Promise<Detection | null> {
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > maxFileBytes) return null;
    const audited = lists.audited ?? new Set<string>();
    const read = await readHashing(handle, digestsFor(new Set([...lists.blocked, ...audited])), maxFileBytes, Buffer.allocUnsafe(Math.min(READ_CHUNK, stat.size + 1)));
    if (read === null) return null;
    const { digests } = read;
    const signature = signatureOf(digests.sha256, read.head);
    if (signature !== undefined) return { kind: 'malware', finding: { path, sha256: digests.sha256, signature } };
    const blocked = listedHash(digests, lists.blocked);
    if (blocked !== undefined) return { kind: 'malware', finding: { path, sha256: digests.sha256, signature: BLOCK_INDICATOR }, indicator: blocked };
    const audit = listedHash(digests, audited);
    return audit === undefined ? null : { kind: 'audit', path, sha256: digests.sha256, indicator: audit };
  } finally {
    await handle.close();
  }
}

const errorCode = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? (error as Error).message;

/** Builds the scan over the given mount table and size limit; the agent uses the system's. */
export function antivirusScanExecutor(options: AntivirusScanOptions = SYSTEM): Executor<'run_antivirus_scan'> {
  return async (ctx) => {
    const started = Date.now();
    const { kind, roots } = scanRoots(ctx.command.parameters.scan, ctx.command.parameters.roots);
    const blocked = new Set([...blockHashes(ctx.command.parameters.blockSha256), ...(ctx.blockHashes ?? [])]);
    const algorithms = digestsFor(blocked);
    const mounts = readMounts(options.mountInfo);

    const report: ScanReport = {
      scan: kind, roots, missingRoots: [], scanned: 0, bytes: 0, directories: 0,
      skipped: { symlinks: 0, special: 0, tooLarge: 0, excludedMounts: 0, unreadable: 0 },
      findings: [], findingsLeftOut: 0, errors: [], durationMs: 0,
    };
    const unreadable = (path: string, error: unknown): void => {
      report.skipped.unreadable += 1;
      if (report.errors.length < ERROR_SAMPLES_MAX) report.errors.push({ path, error: errorCode(error) });
    };
    const buffer = Buffer.allocUnsafe(READ_CHUNK);

    async function scanFile(path: string): Promise<void> {
      let handle: FileHandle;
      try {
        handle = await openForScan(path);
      } catch (error) {
        if (errorCode(error) === 'ELOOP') report.skipped.symlinks += 1; // replaced by a link since it was listed
        else unreadable(path, error);
        return;
      }
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) {
          report.skipped.special += 1;
          return;
        }
        if (stat.size > options.maxFileBytes) {
          report.skipped.tooLarge += 1;
          return;
        }
        const read = await readHashing(handle, algorithms, options.maxFileBytes, buffer);
        if (read === null) {
          report.skipped.tooLarge += 1; // it grew while being read
          return;
        }
        const { digests } = read;
        report.scanned += 1;
        report.bytes += read.total;
        const signature = signatureOf(digests.sha256, read.head) ?? (isBlocked(digests, blocked) ? BLOCK_INDICATOR : undefined);
        if (signature === undefined) return;
        if (report.findings.length < FINDINGS_MAX) report.findings.push({ path, sha256: digests.sha256, signature });
        else report.findingsLeftOut += 1;
      } catch (error) {
        unreadable(path, error);
      } finally {
        await handle.close();
      }
    }

    /**
     * Skips the kernel's pseudo-directories and mount points of virtual file
     * systems, and of network ones met on the way (a root named on a share is scanned).
     */
    function excluded(path: string, fsType: string | undefined, isRoot = false): boolean {
      if (EXCLUDED_DIRS.has(path)) return true;
      if (fsType === undefined) return false;
      return VIRTUAL_FS.has(fsType) || (!isRoot && (NETWORK_FS.has(fsType) || fsType.startsWith('fuse.')));
    }

    /** The type of the file system holding a path: the longest mount point above it. */
    function fsTypeOf(path: string): string | undefined {
      let best = '';
      let type: string | undefined;
      for (const [mountPoint, fsType] of mounts) {
        const above = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
        if (above && mountPoint.length >= best.length) [best, type] = [mountPoint, fsType];
      }
      return type;
    }

    /** What an entry is, asking the file system itself when the listing did not say; null when it vanished. */
    async function kindOf(entry: Dirent, path: string): Promise<'link' | 'directory' | 'file' | 'special' | null> {
      let stat: Dirent | Stats = entry;
      const known = entry.isSymbolicLink() || entry.isDirectory() || entry.isFile() || entry.isFIFO() || entry.isSocket() || entry.isCharacterDevice() || entry.isBlockDevice();
      if (!known) {
        try {
          stat = await lstat(path);
        } catch (error) {
          unreadable(path, error);
          return null;
        }
      }
      if (stat.isSymbolicLink()) return 'link';
      if (stat.isDirectory()) return 'directory';
      return stat.isFile() ? 'file' : 'special';
    }

    const visited = new Set<string>();
    const pending: string[] = [];
    /** Queues a directory unless it is excluded or was already walked (a bind mount, or a root inside another root). */
    async function enqueue(dir: string, fsType: string | undefined, isRoot = false): Promise<void> {
      if (excluded(dir, fsType, isRoot)) {
        report.skipped.excludedMounts += 1;
        return;
      }
      try {
        const stat = await lstat(dir, { bigint: true });
        const id = `${stat.dev}:${stat.ino}`;
        if (visited.has(id)) return;
        visited.add(id);
        pending.push(dir);
      } catch (error) {
        unreadable(dir, error);
      }
    }

    for (const root of roots) {
      let real: string;
      let stat: BigIntStats;
      try {
        // A root is followed even through a link: it was named on purpose.
        real = await realpath(root);
        stat = await lstat(real, { bigint: true });
      } catch {
        report.missingRoots.push(root);
        continue;
      }
      const id = `${stat.dev}:${stat.ino}`;
      if (stat.isDirectory()) await enqueue(real, fsTypeOf(real), true);
      else if (visited.has(id)) continue; // the same file named twice
      else if (stat.isFile()) {
        visited.add(id);
        await scanFile(real);
      } else report.skipped.special += 1;

      while (pending.length) {
        const dir = pending.pop()!;
        report.directories += 1;
        let entries;
        try {
          entries = await opendir(dir, { bufferSize: 256 });
        } catch (error) {
          unreadable(dir, error);
          continue;
        }
        try {
          for await (const entry of entries) {
            const path = join(dir, entry.name);
            const kind = await kindOf(entry, path);
            if (kind === 'link') report.skipped.symlinks += 1;
            else if (kind === 'directory') await enqueue(path, mounts.get(path));
            else if (kind === 'file' && excluded(path, mounts.get(path))) report.skipped.excludedMounts += 1; // e.g. a namespace file bound onto a file
            else if (kind === 'file') await scanFile(path);
            else if (kind === 'special') report.skipped.special += 1;
          }
        } catch (error) {
          unreadable(dir, error); // the directory vanished or failed part-way through the listing
        }
      }
    }

    report.durationMs = Date.now() - started;
    return { output: JSON.stringify(fitScanReport(report, ACTION_OUTPUT_MAX_CHARS)) };
  };
}

/**
 * Walks the scan's roots without following links or entering kernel and
 * network file systems, hashes every regular file up to the size limit and
 * matches it against the built-in signatures and the block indicators in
 * `blockSha256`. A scan changes nothing, so it has no snapshot and no undo.
 */
export const runAntivirusScan = antivirusScanExecutor();
