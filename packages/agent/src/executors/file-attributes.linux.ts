import type { CommandRunner, RunResult } from '../runner.ts';
import { heldPath, type OpenFile } from '../safe-fs.linux.ts';
import { ExecutionError } from './executor.ts';

/** One extended attribute as the file carried it: its full name (namespace included) and its value in base64. */
export interface RecordedXattr { name: string; value: string }

/** The extended attributes of a quarantined file, for restore to put back and check. */
export interface XattrRecord {
  /** Every attribute read, security.* and system.* first, then trusted.* and user.*: what the bounds keep is what matters most. */
  kept: RecordedXattr[];
  /** Some of the names the file carried but the record does not hold (past the bounds, unreadable, or not a name an argument can carry). */
  notKept: string[];
  /** How many attributes were not kept in all. */
  notKeptCount: number;
  /** Set, with the reason, when the attributes could not be read at all. */
  unreadable?: string;
}

/** A name or path as the analyst reads it: as is, or JSON-quoted when it holds control characters or is padded. */
// eslint-disable-next-line no-control-regex
export const shown = (text: string): string => (/[\u0000-\u001f\u007f]|^\s|\s$/.test(text) ? JSON.stringify(text) : text);

// Extended attributes go through Debian's `attr` tools (Node has no xattr
// API). They reach the file the agent holds open by heldPath
// (/proc/<agent pid>/fd/N) and follow that one link to it, so no name an
// attacker controls is looked up again. Without -h, deliberately: with -h
// they would act on the /proc entry itself, which carries none of the
// file's attributes.

/** At most this many bytes of names and values are kept with a quarantine record; the journal carries it. */
export const XATTR_RECORD_MAX_BYTES = 64 * 1024;
/** At most this many attributes are kept; each is read by one getfattr. */
export const XATTR_RECORD_MAX_COUNT = 128;
/** At most this many names of attributes not kept are listed in the record. */
const NOT_KEPT_NAMES = 16;
/** Put back in this order; what matters most is kept first, and set last (a capability survives setting the others). */
const NAMESPACES = ['security.', 'system.', 'trusted.', 'user.'];
const namespaceRank = (name: string): number => {
  const rank = NAMESPACES.findIndex((prefix) => name.startsWith(prefix));
  return rank < 0 ? NAMESPACES.length : rank;
};

/** Runs a tool; a tool that cannot be started answers like one that failed, with the reason. */
async function tool(runner: CommandRunner, command: string, args: readonly string[]): Promise<RunResult> {
  try {
    return await runner.run(command, args);
  } catch (error) {
    return { code: -1, stdout: '', stderr: `${command} could not be run (Debian package attr): ${(error as Error).message}` };
  }
}

/** The reason a tool gives, without the /proc path it was handed. */
const reasonOf = (result: RunResult): string => (result.stderr.trim().split('\n').at(-1) ?? '').replace(/^\S+: \/proc\/\d+\/fd\/\d+: /, '') || `exit code ${result.code}`;

/**
 * getfattr prints a byte of a name as `\ooo` when it is a backslash, `=` or
 * not printable: back to the name, or undefined when its bytes are not
 * UTF-8 text, which no argument vector could carry back to setfattr.
 */
function unescapeName(printed: string): string | undefined {
  if (printed.includes('\uFFFD')) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < printed.length;) {
    const octal = /^\\([0-3][0-7]{2})/.exec(printed.slice(i, i + 4));
    if (octal) {
      bytes.push(parseInt(octal[1]!, 8));
      i += 4;
      continue;
    }
    const char = String.fromCodePoint(printed.codePointAt(i)!);
    bytes.push(...Buffer.from(char));
    i += char.length;
  }
  try {
    const name = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
    return name.includes('\0') ? undefined : name;
  } catch {
    return undefined;
  }
}

/** setfattr reads `\ooo` in the name it is given: every byte but letters, digits, `.`, `_` and `-` goes that way, so the name arrives exactly. */
const escapeName = (name: string): string =>
  [...Buffer.from(name)].map((byte) => (/[A-Za-z0-9._-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`)).join('');

/** The lines getfattr prints about the file, without the `# file:` header and the blank line that ends it. */
const getfattrLines = (stdout: string): string[] => stdout.split('\n').filter((line) => line !== '' && !line.startsWith('# file: '));

/** The names of the attributes of the file open as `fd`, as getfattr prints them; none on a file system that keeps none. */
async function listXattrs(runner: CommandRunner, fd: number): Promise<string[]> {
  const result = await tool(runner, 'getfattr', ['--absolute-names', '-m', '-', heldPath(fd)]);
  if (result.code === 0) return getfattrLines(result.stdout);
  if (/Operation not supported/.test(result.stderr)) return [];
  throw new ExecutionError(`its extended attributes could not be listed: ${reasonOf(result)}`);
}

/** One attribute's value in base64, or undefined when the file no longer carries it. */
async function readXattr(runner: CommandRunner, fd: number, name: string): Promise<string | undefined> {
  const result = await tool(runner, 'getfattr', ['--absolute-names', '-n', name, '-e', 'base64', heldPath(fd)]);
  if (result.code !== 0) {
    if (/No such attribute/.test(result.stderr)) return undefined;
    throw new ExecutionError(`the extended attribute ${shown(name)} could not be read: ${reasonOf(result)}`);
  }
  const line = getfattrLines(result.stdout)[0];
  const value = line?.includes('=') ? line.slice(line.indexOf('=') + 1) : '0s';
  if (!/^0s[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new ExecutionError(`getfattr printed the extended attribute ${shown(name)} in an unexpected form`);
  return value.slice(2);
}

/**
 * Reads every extended attribute of the file, in all namespaces root can
 * read, within the bounds. Attributes past them are named as not kept, and
 * the quarantine goes on: taking the file out of reach comes first.
 */
export async function recordXattrs(runner: CommandRunner, file: OpenFile): Promise<XattrRecord> {
  let printed: string[];
  try {
    printed = await listXattrs(runner, file.fd);
  } catch (error) {
    return { kept: [], notKept: [], notKeptCount: 0, unreadable: (error as Error).message };
  }
  const record: XattrRecord = { kept: [], notKept: [], notKeptCount: 0 };
  const notKept = (name: string): void => {
    record.notKeptCount++;
    if (record.notKept.length < NOT_KEPT_NAMES) record.notKept.push(name);
  };
  const names = printed.map((p) => ({ printed: p, name: unescapeName(p) }));
  names.sort((a, b) => namespaceRank(a.name ?? '') - namespaceRank(b.name ?? '') || (a.printed < b.printed ? -1 : 1));
  let bytes = 0;
  for (const { printed: p, name } of names) {
    if (name === undefined || record.kept.length >= XATTR_RECORD_MAX_COUNT || bytes >= XATTR_RECORD_MAX_BYTES) {
      notKept(name ?? p);
      continue;
    }
    let value: string | undefined;
    try {
      value = await readXattr(runner, file.fd, name);
    } catch {
      notKept(name);
      continue;
    }
    if (value === undefined) continue; // removed since it was listed
    const size = Buffer.byteLength(name) + Buffer.from(value, 'base64').length;
    if (bytes + size > XATTR_RECORD_MAX_BYTES) {
      notKept(name);
      continue;
    }
    bytes += size;
    record.kept.push({ name, value });
  }
  return record;
}

export const complete = (record: XattrRecord): boolean => record.unreadable === undefined && record.notKeptCount === 0;

/**
 * Puts the recorded attributes back on the file open as `file` (after its
 * owner, mode and times: a chown clears a capability), removes those it
 * did not carry when it was quarantined (an ACL inherited from a folder's
 * default, say) when the record is complete, then reads them all back.
 * Throws naming the first attribute that is not as recorded.
 */
export async function putBackXattrs(runner: CommandRunner, file: OpenFile, record: XattrRecord, path: string): Promise<void> {
  if (record.unreadable !== undefined) return;
  const target = heldPath(file.fd);
  const notBack = (name: string, why: string): ExecutionError =>
    new ExecutionError(`the extended attribute ${shown(name)} of ${path} could not be put back (${why}): not restored, the file stays in the quarantine vault`);
  for (const { name, value } of [...record.kept].reverse()) {
    const result = await tool(runner, 'setfattr', ['-n', escapeName(name), ...(value === '' ? [] : ['-v', `0s${value}`]), target]);
    if (result.code !== 0) throw notBack(name, reasonOf(result));
  }
  let carried: string[];
  try {
    carried = await listXattrs(runner, file.fd);
  } catch (error) {
    throw new ExecutionError(`the extended attributes of ${path} could not be read back once put back (${(error as Error).message}): not restored, the file stays in the quarantine vault`);
  }
  const recorded = new Set(record.kept.map((x) => x.name));
  if (complete(record)) {
    for (const printed of carried) {
      const name = unescapeName(printed);
      if (name !== undefined && recorded.has(name)) continue;
      const result = name === undefined ? undefined : await tool(runner, 'setfattr', ['-x', escapeName(name), target]);
      if (result?.code !== 0) {
        throw new ExecutionError(`the extended attribute ${shown(name ?? printed)}, which ${path} did not carry when it was quarantined, could not be removed (${result ? reasonOf(result) : 'its name is not text'}): not restored, the file stays in the quarantine vault`);
      }
    }
  }
  for (const { name, value } of record.kept) {
    let now: string | undefined;
    try {
      now = await readXattr(runner, file.fd, name);
    } catch (error) {
      throw notBack(name, (error as Error).message);
    }
    if (now !== value) throw notBack(name, now === undefined ? 'the file does not keep it' : 'it reads back with another value');
  }
}

/** What the output says about the attributes kept with a quarantine. */
export function xattrsKeptText(record: XattrRecord): string[] {
  if (record.unreadable !== undefined) return [`its extended attributes were not recorded (${record.unreadable}): restore cannot put them back`];
  const parts = record.kept.length ? [`recorded its extended attributes ${record.kept.map((x) => shown(x.name)).join(', ')}`] : [];
  if (record.notKeptCount) {
    parts.push(`did not keep ${record.notKeptCount} more extended attribute${record.notKeptCount === 1 ? '' : 's'} (${record.notKept.map(shown).join(', ')}${record.notKeptCount > record.notKept.length ? ', …' : ''}): past ${XATTR_RECORD_MAX_BYTES / 1024} KiB or ${XATTR_RECORD_MAX_COUNT} attributes, or unreadable; restore will not put them back`);
  }
  return parts;
}

export function isXattrRecord(value: unknown): value is XattrRecord {
  const r = value as Partial<XattrRecord>;
  return Array.isArray(r.kept) && r.kept.every((x: Partial<RecordedXattr>) => typeof x?.name === 'string' && typeof x.value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(x.value))
    && Array.isArray(r.notKept) && typeof r.notKeptCount === 'number' && (r.unreadable === undefined || typeof r.unreadable === 'string');
}
