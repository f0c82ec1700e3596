import { type Dirent, type Stats, readFileSync } from 'node:fs';
import { Folder } from '../safe-fs.linux.ts';
import { shown } from './file-attributes.linux.ts';
import { sameFile } from './file-processes.linux.ts';
import { parseMountinfo } from './restrict-code.linux.ts';

/** Where other names of a file are looked for besides its own folder: the trees anyone can write to. */
const LINK_SEARCH_ROOTS = ['/tmp', '/var/tmp', '/dev/shm', '/home'];
/** Entries looked at in all, and folder depth below each root: the search is a courtesy, never a long walk. */
const LINK_SEARCH_MAX_ENTRIES = 100_000;
const LINK_SEARCH_MAX_DEPTH = 16;

/** Where the file system holding `path` is mounted: the longest mount point above it. */
function mountPointOf(path: string): string | null {
  let best: string | null = null;
  for (const { mountPoint } of parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))) {
    const above = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (above && (best === null || mountPoint.length > best.length)) best = mountPoint;
  }
  return best;
}

/**
 * Other names of the file (hard links) in its own folder, under
 * LINK_SEARCH_ROOTS, then anywhere on its file system from where it is
 * mounted, found without following any link (each folder opened from the
 * last with O_NOFOLLOW), within bounds: never another file system.
 * The vault is skipped: the file's own name there is not another link.
 */
export function findOtherLinks(file: Stats, folder: Folder, vault: Folder): string[] {
  const wanted = file.nlink - 1;
  const found = new Set<string>();
  const vaultId = vault.chain.at(-1)!;
  let budget = LINK_SEARCH_MAX_ENTRIES;
  const scan = (dir: Folder, depth: number): void => {
    const here = dir.chain.at(-1)!;
    if (here.dev !== file.dev || (here.dev === vaultId.dev && here.ino === vaultId.ino)) return;
    let entries: Dirent[];
    try {
      entries = dir.entries();
    } catch {
      return;
    }
    for (const entry of entries) {
      if (found.size >= wanted || budget-- <= 0) return;
      try {
        if (entry.isDirectory()) {
          if (depth <= 0) continue;
          const child = dir.openChild(entry.name);
          try {
            scan(child, depth - 1);
          } finally {
            child.close();
          }
        } else if (entry.isFile() && sameFile(dir.lstat(entry.name), file)) {
          found.add(dir.join(entry.name));
        }
      } catch {
        // replaced by a link, removed or unreadable meanwhile: not followed
      }
    }
  };
  scan(folder, 0);
  const mountPoint = mountPointOf(folder.path);
  for (const root of new Set([...LINK_SEARCH_ROOTS, ...(mountPoint ? [mountPoint] : [])])) {
    if (found.size >= wanted || budget <= 0) break;
    let top: Folder;
    try {
      top = Folder.open(root);
    } catch {
      continue; // absent, a link, or a kernel file system
    }
    try {
      scan(top, LINK_SEARCH_MAX_DEPTH);
    } finally {
      top.close();
    }
  }
  return [...found];
}

export function otherLinksText({ count, found }: { count: number; found: string[] }): string {
  const where = [
    ...(found.length ? [`found: ${found.map(shown).join(', ')}`] : []),
    ...(count > found.length ? [`${count - found.length} not found in its folder, under ${LINK_SEARCH_ROOTS.join(', ')} or in the first ${LINK_SEARCH_MAX_ENTRIES} entries of its file system`] : []),
  ].join('; ');
  return `${count} other hard link${count === 1 ? '' : 's'} to the same file remain${count === 1 ? 's' : ''} (${where}): its content stays reachable through ${count === 1 ? 'it' : 'them'}, and quarantining ${count === 1 ? 'that path' : 'those paths'} removes it`;
}
