import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readSmallFile } from '../safe-fs.linux.ts';

/**
 * Which package installed a file, from dpkg's and rpm's own records, with
 * the digest each recorded for it: what tells a file a package put there
 * from one that took its place.
 */

const LIMITS = {
  /** How long dpkg-query or rpm may take, and how much it may print, before its answer is ignored. */
  queryMs: 30_000,
  queryBytes: 32 * 1024 * 1024,
  /** A package's md5sums file is read whole up to this size. */
  md5sumsBytes: 16 * 1024 * 1024,
} as const;

export interface PackageRecord { manager: 'dpkg' | 'rpm'; name: string; digest: string | null }

/**
 * A path dpkg-query -S and rpm -qf take as that one path: absolute, one
 * line, and free of what dpkg-query reads as a glob pattern (`*?[\`),
 * which would name files other than the one asked about.
 */
export const LITERAL_PATH = /^\/[^*?[\\\n]*$/;
const DPKG_PACKAGE = '[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?';
/** `pkg[:arch][, pkg2…]: path`; a `diversion by …` or `local diversion …` line has spaces where this has none, and never matches. */
const DPKG_OWNERS_LINE = new RegExp(`^(${DPKG_PACKAGE}(?:, ${DPKG_PACKAGE})*): (/.*)$`);
/** For each package owning a path asked, one line per file of that package: its name, the digest recorded for the file (empty for none) and the file's path. */
const RPM_QUERY_FORMAT = '[%{=NAME}\\t%{FILEDIGESTS}\\t%{FILENAMES}\\n]';

const execFileAsync = promisify(execFile);

/**
 * What a package manager printed; '' when it is not installed, failed
 * outright, or ran out of time or room. `answered` says which failing exit
 * statuses still come with answers (dpkg-query: 1, some paths are nobody's;
 * rpm: the number of paths it found no package for).
 */
async function packageQuery(command: string, args: readonly string[], answered: (status: number) => boolean): Promise<string> {
  // The C locale: what is parsed here is English there.
  // eslint-disable-next-line no-restricted-syntax -- the child inherits the agent's environment; nothing is configured from it
  const env = { ...process.env, LC_ALL: 'C' };
  try {
    return (await execFileAsync(command, args, { encoding: 'utf8', env, timeout: LIMITS.queryMs, maxBuffer: LIMITS.queryBytes })).stdout;
  } catch (error) {
    const { code, killed, stdout } = error as { code?: unknown; killed?: boolean; stdout?: string };
    return typeof code === 'number' && !killed && answered(code) ? stdout ?? '' : '';
  }
}

/**
 * The packages dpkg-query -S names as owners of each path asked. A line
 * for any other path (what a pattern would match) is ignored, so only
 * paths asked for exactly come back.
 */
export function parseDpkgOwners(output: string, asked: ReadonlySet<string>): Map<string, string[]> {
  const owners = new Map<string, string[]>();
  for (const line of output.split('\n')) {
    const match = DPKG_OWNERS_LINE.exec(line);
    if (match && asked.has(match[2]!)) owners.set(match[2]!, match[1]!.split(', '));
  }
  return owners;
}

/**
 * The MD5 dpkg recorded for each file of a package, by path without its
 * leading "/", from `info/<pkg>.md5sums` (a package installed for several
 * architectures keeps `info/<pkg>:<arch>.md5sums`, and dpkg-query names
 * it with its architecture then). Read without following links; empty
 * when there is no such file.
 */
async function dpkgMd5sums(admindir: string, pkg: string): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  const plain = pkg.split(':')[0]!;
  for (const name of pkg === plain ? [pkg] : [pkg, plain]) {
    const text = await readSmallFile(join(admindir, 'info', `${name}.md5sums`), LIMITS.md5sumsBytes);
    if (text === null) continue;
    for (const line of text.split('\n')) {
      const match = /^([0-9a-f]{32}) {2}(.+)$/.exec(line);
      if (match) sums.set(match[2]!, match[1]!);
    }
    return sums;
  }
  return sums;
}

/** The dpkg packages owning each path, with the MD5 each recorded for it, from one dpkg-query call. */
async function dpkgRecords(paths: readonly string[], admindir: string): Promise<Map<string, PackageRecord[]>> {
  const records = new Map<string, PackageRecord[]>();
  if (paths.length === 0) return records;
  const output = await packageQuery('dpkg-query', ['--admindir', admindir, '-S', ...paths], (status) => status === 1);
  const md5sums = new Map<string, Promise<Map<string, string>>>();
  for (const [path, names] of parseDpkgOwners(output, new Set(paths))) {
    const found: PackageRecord[] = [];
    for (const name of names) {
      if (!md5sums.has(name)) md5sums.set(name, dpkgMd5sums(admindir, name));
      found.push({ manager: 'dpkg', name, digest: (await md5sums.get(name)!).get(path.slice(1)) ?? null });
    }
    records.set(path, found);
  }
  return records;
}

/**
 * The rpm packages owning each path asked, with the digest each recorded
 * for it (MD5 by older rpm, SHA-256 by newer), from output in
 * RPM_QUERY_FORMAT. Lines for the packages' other files are ignored.
 */
export function parseRpmRecords(output: string, asked: ReadonlySet<string>): Map<string, PackageRecord[]> {
  const records = new Map<string, PackageRecord[]>();
  for (const line of output.split('\n')) {
    const [name, digest, ...rest] = line.split('\t');
    const path = rest.join('\t');
    if (name === undefined || digest === undefined || !asked.has(path) || !/^\S{1,256}$/.test(name)) continue;
    const found = records.get(path) ?? [];
    // A package owning two paths asked is listed once for each.
    if (!found.some((record) => record.name === name)) found.push({ manager: 'rpm', name, digest: /^[0-9a-f]+$/i.test(digest) ? digest.toLowerCase() : null });
    records.set(path, found);
  }
  return records;
}

/** The rpm packages owning each path, from one rpm call. */
async function rpmRecords(paths: readonly string[], dbPath: string | undefined): Promise<Map<string, PackageRecord[]>> {
  if (paths.length === 0) return new Map();
  const output = await packageQuery('rpm', [...(dbPath === undefined ? [] : ['--dbpath', dbPath]), '-qf', '--queryformat', RPM_QUERY_FORMAT, ...paths], () => true);
  return parseRpmRecords(output, new Set(paths));
}

/** The packages owning each path: dpkg's, and for what dpkg does not own, rpm's. */
export async function packageRecords(paths: readonly string[], layout: { dpkgAdmindir: string; rpmDbPath?: string | undefined }): Promise<Map<string, PackageRecord[]>> {
  const dpkg = await dpkgRecords(paths, layout.dpkgAdmindir);
  const rpm = await rpmRecords(paths.filter((path) => !dpkg.has(path)), layout.rpmDbPath);
  return new Map([...dpkg, ...rpm]);
}
