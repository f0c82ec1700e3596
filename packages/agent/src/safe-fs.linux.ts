import { createHash } from 'node:crypto';
import { closeSync, constants, type Dirent, fchmodSync, fchownSync, fstatSync, fsyncSync, futimesSync, linkSync, lstatSync, mkdirSync, openSync, read, readdirSync, readFileSync, readlinkSync, renameSync, type Stats, symlinkSync, unlinkSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { ExecutionError } from './executors/executor.ts';
import { parseMountinfo } from './executors/restrict-code.linux.ts';

/**
 * File operations for the server's commands that never follow a symbolic
 * link, in any component of a path.
 *
 * Node has no openat(2). The same guarantee comes from the kernel's
 * /proc/self/fd/N: a path through it resolves to the very directory held
 * open as N, not to whatever now has that directory's name, so
 * `open("/proc/self/fd/N/name", O_NOFOLLOW)` is `openat(N, "name",
 * O_NOFOLLOW)`. A path is opened from `/` one component at a time with
 * O_DIRECTORY | O_NOFOLLOW, each relative to the last one held; a link
 * anywhere fails with ELOOP, and nothing is looked up by name twice. Rename,
 * unlink and create go through the same directory descriptors (renameat,
 * unlinkat, openat with O_EXCL); permissions, owner and times are set on the
 * open file itself. This needs no compiled helper and holds as long as the
 * agent sees its own /proc, which it needs anyway.
 */

/** What a placed file gets besides its bytes: the mode always; owner and times when given. */
export interface FileMeta { mode: number; uid?: number; gid?: number; atimeMs?: number; mtimeMs?: number }

/** One folder of a path as it was when an action ran: restore refuses if any of these differ. */
export interface FolderId { path: string; dev: number; ino: number; uid: number; mode: number }

/** Kernel interfaces and pseudo file systems: their files are not files to quarantine, hash or rewrite. */
export const SPECIAL_FS = new Set([
  'proc', 'sysfs', 'devtmpfs', 'devpts', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs', 'configfs',
  'fusectl', 'pstore', 'bpf', 'mqueue', 'hugetlbfs', 'autofs', 'binfmt_misc', 'efivarfs', 'selinuxfs', 'rpc_pipefs', 'nsfs',
]);

const PATH_MAX = 4096;
const NAME_MAX = 255;
const O_DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** O_NONBLOCK: a FIFO swapped in for a file must not hang the open. */
const O_FILE = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The path of entry `name` of the folder held open as `dirFd`: one component, never `.` or `..`. */
function through(dirFd: number, name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw new ExecutionError(`not a file name: ${JSON.stringify(name)}`);
  return `/proc/self/fd/${dirFd}/${name}`;
}

/**
 * The components of an absolute path an attacker may have written: no `.`,
 * `..` or empty component, no NUL, within the kernel's limits. What comes
 * back is the path itself, already canonical; anything else is refused.
 */
export function pathComponents(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new ExecutionError(`not an absolute path: ${JSON.stringify(path)}`);
  if (path.length > PATH_MAX || path.includes('\0')) throw new ExecutionError(`not a usable path: ${JSON.stringify(path.slice(0, 200))}`);
  const parts = path.slice(1).split('/');
  if (parts.length === 1 && parts[0] === '') return [];
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..' || Buffer.byteLength(part) > NAME_MAX) {
      throw new ExecutionError(`not a canonical path (empty, "." or ".." component, or a name too long): ${JSON.stringify(path)}`);
    }
  }
  return parts;
}

const folderId = (path: string, stat: Stats): FolderId => ({ path, dev: stat.dev, ino: stat.ino, uid: stat.uid, mode: stat.mode & 0o7777 });

/** The file system type of an open descriptor, from the mount the kernel says it is on. */
export function fsTypeOf(fd: number): string | undefined {
  const mountId = /^mnt_id:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((m) => String(m.id) === mountId)?.fsType;
}

/**
 * The path by which another program (getfattr, setfattr) reaches a file or
 * folder the agent holds open as `fd`. A child's /proc/self is the child,
 * so the path names the agent's own process. Resolving it does not look up
 * any name the file or its folders carry: the kernel jumps straight to what
 * the descriptor holds, so a file renamed, replaced or swapped for a link
 * after it was opened cannot redirect the tool. The tool must follow this
 * one link (getfattr and setfattr without -h): with -h they act on the
 * /proc entry itself, which carries no attributes of the file.
 */
export function heldPath(fd: number): string {
  return `/proc/${process.pid}/fd/${fd}`;
}

/**
 * The entry at `path` as seen from the folder `base` (an absolute `path`
 * from `root`), without following any link on the way or at its end: each
 * folder is opened with O_NOFOLLOW from the last one held, as in
 * Folder.open. `base` and `root` themselves are opened as given, which is
 * what /proc/PID/cwd and /proc/PID/root are for. Undefined when the path
 * does not lead to an entry that way.
 */
export function lstatFrom(base: string, root: string, path: string): Stats | undefined {
  if (path === '' || path.length > PATH_MAX || path.includes('\0')) return undefined;
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  const last = parts.pop();
  let fd: number;
  try {
    fd = openSync(path.startsWith('/') ? root : base, O_DIR & ~constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    for (const part of parts) {
      if (Buffer.byteLength(part) > NAME_MAX) return undefined;
      // `..` goes up from the folder held: it follows no link.
      const next = openSync(part === '..' ? `/proc/self/fd/${fd}/..` : through(fd, part), O_DIR);
      closeSync(fd);
      fd = next;
    }
    if (last === undefined) return fstatSync(fd);
    if (last === '..') return lstatSync(`/proc/self/fd/${fd}/..`);
    return Buffer.byteLength(last) > NAME_MAX ? undefined : lstatSync(through(fd, last), { throwIfNoEntry: false });
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** A folder held open, reached without following any link, with the identity of every folder on the way. */
export class Folder {
  private constructor(readonly path: string, readonly fd: number, readonly chain: readonly FolderId[]) {}

  /** Opens `path` from `/`, one component at a time, refusing links, non-folders and kernel file systems. */
  static open(path: string): Folder {
    const parts = pathComponents(path);
    let fd = openSync('/', O_DIR);
    const chain: FolderId[] = [folderId('/', fstatSync(fd))];
    let sofar = '';
    try {
      for (const part of parts) {
        sofar += `/${part}`;
        let next: number;
        try {
          next = openSync(through(fd, part), O_DIR);
        } catch (error) {
          // O_DIRECTORY answers a link with ENOTDIR: say which it was.
          const link = lstatSync(through(fd, part), { throwIfNoEntry: false })?.isSymbolicLink();
          throw new ExecutionError(describe(link ? Object.assign(new Error('link'), { code: 'ELOOP' }) : error, sofar), { cause: error });
        }
        closeSync(fd);
        fd = next;
        chain.push(folderId(sofar, fstatSync(fd)));
      }
      const fsType = fsTypeOf(fd);
      if (fsType === undefined || SPECIAL_FS.has(fsType)) throw new ExecutionError(`${path || '/'} is on a ${fsType ?? 'unknown'} file system, not an ordinary one: refused`);
      return new Folder(path || '/', fd, chain);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** The folder of an absolute file path, and the file's name in it. */
  static ofFile(path: string): { folder: Folder; name: string } {
    const parts = pathComponents(path);
    const name = parts.pop();
    if (name === undefined) throw new ExecutionError('"/" is not a file');
    return { folder: Folder.open(`/${parts.join('/')}`), name };
  }

  /**
   * The folder `name` inside this one, opened without following a link
   * (O_NOFOLLOW from this folder's descriptor). A folder on another device
   * is a mount point: it is refused, as Folder.open refuses it, when it is a
   * kernel file system.
   */
  openChild(name: string): Folder {
    const path = this.join(name);
    let fd: number;
    try {
      fd = openSync(through(this.fd, name), O_DIR);
    } catch (error) {
      throw new ExecutionError(describe(error, path), { cause: error });
    }
    try {
      const id = folderId(path, fstatSync(fd));
      if (id.dev !== this.chain.at(-1)?.dev) {
        const fsType = fsTypeOf(fd);
        if (fsType === undefined || SPECIAL_FS.has(fsType)) throw new ExecutionError(`${path} is on a ${fsType ?? 'unknown'} file system, not an ordinary one: refused`);
      }
      return new Folder(path, fd, [...this.chain, id]);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** The entries of this very folder (read through its descriptor, not its name), with the type each one had when it was read. */
  entries(): Dirent[] {
    return readdirSync(`/proc/self/fd/${this.fd}`, { withFileTypes: true });
  }

  /** Throws unless every folder on the way is the one recorded when the action ran: device, inode, owner and mode. */
  expectChain(recorded: readonly FolderId[] | undefined): void {
    if (!recorded) return; // recorded by an agent version that kept no chain
    const changed = recorded.find((was, i) => {
      const now = this.chain[i];
      return !now || now.path !== was.path || now.dev !== was.dev || now.ino !== was.ino || now.uid !== was.uid || now.mode !== was.mode;
    });
    if (changed || recorded.length !== this.chain.length) {
      const where = changed?.path ?? this.path;
      throw new ExecutionError(`the folder ${where} is not the one recorded when the action ran (replaced, moved, or its owner or mode changed): nothing was written`);
    }
  }

  /** The entry `name` here, without following it (fstatat with AT_SYMLINK_NOFOLLOW); undefined when there is none. */
  lstat(name: string): Stats | undefined {
    return lstatSync(through(this.fd, name), { throwIfNoEntry: false });
  }

  /**
   * Opens the regular file `name` here for reading: not a link, not a
   * device, FIFO or socket, not on a kernel file system.
   */
  openFile(name: string): OpenFile {
    const path = this.join(name);
    let fd: number;
    try {
      fd = openSync(through(this.fd, name), O_FILE);
    } catch (error) {
      throw new ExecutionError(describe(error, path, 'file'), { cause: error });
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new ExecutionError(`${path} is not a regular file: refused`);
      return new OpenFile(path, fd, stat);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Creates `name` here, exclusively (never an existing file or a link), root-only until its metadata is set. */
  createFile(name: string): OpenFile {
    const fd = openSync(through(this.fd, name), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    return new OpenFile(this.join(name), fd, fstatSync(fd));
  }

  /**
   * Puts a new file at `name` through `temporary`, a file beside it: `fill`
   * writes its bytes, it gets `meta` (owner first: a chown clears set-id
   * bits, which the mode then puts back), `finish` adds what else it must
   * carry (extended attributes), it is made durable, and only then takes
   * its name. `replace` renames it over what is there; otherwise it is
   * hard-linked into place, which fails rather than replace a file that
   * appeared meanwhile. The temporary file never outlives the call.
   */
  async placeFile(name: string, temporary: string, fill: (file: OpenFile) => Promise<void>, meta: FileMeta, replace: boolean, finish?: (file: OpenFile) => Promise<void>): Promise<void> {
    if (this.lstat(temporary)?.isFile()) this.unlink(temporary); // left by an interrupted run of the same action
    const file = this.createFile(temporary);
    try {
      try {
        await fill(file);
        if (meta.uid !== undefined && meta.gid !== undefined) fchownSync(file.fd, meta.uid, meta.gid);
        fchmodSync(file.fd, meta.mode);
        if (meta.atimeMs !== undefined && meta.mtimeMs !== undefined) futimesSync(file.fd, meta.atimeMs / 1000, meta.mtimeMs / 1000);
        if (finish) await finish(file);
        fsyncSync(file.fd);
      } finally {
        file.close();
      }
      if (replace) this.renameTo(temporary, this, name);
      else {
        try {
          this.linkTo(temporary, this, name);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ExecutionError(`a file appeared at ${this.join(name)} meanwhile; it was not overwritten`);
          throw error;
        }
      }
    } finally {
      if (this.lstat(temporary)) this.unlink(temporary);
    }
    this.sync();
  }

  /** renameat(2) from this folder to another; EXDEV when they are on different file systems. */
  renameTo(name: string, to: Folder, toName: string): void {
    renameSync(through(this.fd, name), through(to.fd, toName));
  }

  /** linkat(2): a second name for the file, failing with EEXIST rather than replacing anything there. */
  linkTo(name: string, to: Folder, toName: string): void {
    linkSync(through(this.fd, name), through(to.fd, toName));
  }

  /** readlinkat(2): what the symbolic link `name` here says, without following it. */
  readLink(name: string): string {
    return readlinkSync(through(this.fd, name));
  }

  /** symlinkat(2): a new symbolic link `name` here, failing with EEXIST rather than replacing anything. */
  symlink(target: string, name: string): void {
    symlinkSync(target, through(this.fd, name));
  }

  /** mkdirat(2): a new folder `name` here, failing with EEXIST when anything has that name. */
  makeFolder(name: string, mode: number): void {
    mkdirSync(through(this.fd, name), { mode });
  }

  /** unlinkat(2) of a non-folder entry; a link is removed itself, never what it points to. */
  unlink(name: string): void {
    unlinkSync(through(this.fd, name));
  }

  /** Makes the folder's entries (a rename, a new file) durable. */
  sync(): void {
    fsyncSync(this.fd);
  }

  join(name: string): string {
    return this.path === '/' ? `/${name}` : `${this.path}/${name}`;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function describe(error: unknown, path: string, what: 'folder' | 'file' = 'folder'): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ELOOP': return `${path} is a symbolic link; links are never followed: refused`;
    case 'ENOTDIR': return `${path} is not a folder: refused`;
    case 'ENOENT': return `no ${what} at ${path}`;
    case 'EACCES': case 'EPERM': return `${path} cannot be opened: ${(error as Error).message}`;
    default: return `${path}: ${(error as Error).message}`;
  }
}

/** The hashes files are known by: SHA-256 to Quell, SHA-1 and MD5 to older alerts and to package managers. */
export type DigestName = 'sha256' | 'sha1' | 'md5';

/** Feeds the same bytes to several hashes at once, so that a file is read once however many it is reported with. */
export function digesting<A extends DigestName>(algorithms: readonly A[]): { update(chunk: Buffer): void; digest(): Record<A, string> } {
  const hashes = algorithms.map((algorithm) => [algorithm, createHash(algorithm)] as const);
  return {
    update: (chunk) => {
      for (const [, hash] of hashes) hash.update(chunk);
    },
    digest: () => Object.fromEntries(hashes.map(([algorithm, hash]) => [algorithm, hash.digest('hex')])) as Record<A, string>,
  };
}

const readAsync = promisify(read);
const writeAsync = promisify(write);
const CHUNK = 1024 * 1024;

/** A regular file held open; reads run on libuv's pool, never on the agent's main thread. */
export class OpenFile {
  constructor(readonly path: string, readonly fd: number, readonly stat: Stats) {}

  /** The file system it is on must be an ordinary one. */
  assertOrdinary(): void {
    const fsType = fsTypeOf(this.fd);
    if (fsType === undefined || SPECIAL_FS.has(fsType)) throw new ExecutionError(`${this.path} is on a ${fsType ?? 'unknown'} file system, not an ordinary one: refused`);
  }

  /**
   * Reads the whole file in chunks, at most `limit` bytes, handing each to
   * `onChunk`. A file that grows past its size as it is read, or past the
   * limit, is refused: the loop ends whatever the file does.
   */
  async readAll(limit: number, onChunk: (chunk: Buffer) => void | Promise<void>): Promise<number> {
    if (this.stat.size > limit) throw new ExecutionError(`${this.path} is ${this.stat.size} bytes, more than the ${limit} this action handles`);
    const buffer = Buffer.allocUnsafe(CHUNK);
    let total = 0;
    for (;;) {
      const { bytesRead } = await readAsync(this.fd, buffer, 0, CHUNK, total);
      if (bytesRead === 0) return total;
      total += bytesRead;
      if (total > this.stat.size || total > limit) throw new ExecutionError(`${this.path} grew while it was read: refused`);
      await onChunk(buffer.subarray(0, bytesRead));
    }
  }

  /** The last `maxBytes` of the file at most (a log's newest lines), read once. */
  async tail(maxBytes: number): Promise<Buffer> {
    const start = Math.max(0, this.stat.size - maxBytes);
    const buffer = Buffer.alloc(Math.min(maxBytes, this.stat.size));
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await readAsync(this.fd, buffer, filled, buffer.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  }

  async sha256(limit: number): Promise<string> {
    return (await this.digests(['sha256'], limit)).sha256;
  }

  /** Several hashes of the file from one read of it, within `limit` bytes as readAll. */
  async digests<A extends DigestName>(algorithms: readonly A[], limit: number): Promise<Record<A, string>> {
    const hashing = digesting(algorithms);
    await this.readAll(limit, hashing.update);
    return hashing.digest();
  }

  async writeAll(bytes: Buffer): Promise<void> {
    for (let offset = 0; offset < bytes.length;) offset += (await writeAsync(this.fd, bytes, offset, bytes.length - offset, null)).bytesWritten;
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** The text of a small file (up to `limit` bytes), read without following links; null when it cannot be. */
export async function readSmallFile(path: string, limit: number): Promise<string | null> {
  let where: { folder: Folder; name: string } | null = null;
  try {
    where = Folder.ofFile(path);
    const file = where.folder.openFile(where.name);
    try {
      const chunks: Buffer[] = [];
      await file.readAll(limit, (chunk) => void chunks.push(Buffer.from(chunk)));
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
