import { lstatSync } from 'node:fs';
import { basename, dirname, normalize } from 'node:path';
import { Folder } from '../safe-fs.linux.ts';
import { ExecutionError } from './executor.ts';

/**
 * The symbolic links that make a systemd unit enabled, linked or aliased, as
 * they are on disk. `systemctl disable` removes every one of them, while
 * `systemctl enable` recreates only what the unit's [Install] section says;
 * recording the links themselves is what lets a restore put back exactly what
 * existed, including links an administrator made by hand.
 */
export interface UnitLink { path: string; target: string }

/** Where enable, disable, link and mask put links: the administrator's folder and its runtime twin. */
const LINK_FOLDERS = ['/etc/systemd/system', '/run/systemd/system'] as const;
const DEPENDENCY_FOLDER = /\.(wants|requires|upholds)$/;

function withFolder<T>(open: () => Folder, use: (folder: Folder) => T): T {
  const folder = open();
  try {
    return use(folder);
  } finally {
    folder.close();
  }
}

/**
 * Every link for `unit` in the link folders: its own name in a `.wants`,
 * `.requires` or `.upholds` folder, and aliases or links at the top that name
 * it or point to a file of that name. Masks (links to /dev/null) are not
 * included: masking is a state of its own.
 */
export function unitLinks(unit: string): UnitLink[] {
  const links: UnitLink[] = [];
  for (const root of LINK_FOLDERS) {
    if (!lstatSync(root, { throwIfNoEntry: false })?.isDirectory()) continue;
    withFolder(() => Folder.open(root), (folder) => {
      for (const entry of folder.entries()) {
        if (entry.isSymbolicLink()) {
          const target = folder.readLink(entry.name);
          if (target !== '/dev/null' && (entry.name === unit || basename(target) === unit)) links.push({ path: folder.join(entry.name), target });
        } else if (entry.isDirectory() && DEPENDENCY_FOLDER.test(entry.name)) {
          withFolder(() => folder.openChild(entry.name), (dependencies) => {
            if (dependencies.lstat(unit)?.isSymbolicLink()) links.push({ path: dependencies.join(unit), target: dependencies.readLink(unit) });
          });
        }
      }
    });
  }
  return links;
}

/** A recorded link is only ever one level below a link folder, or two inside a dependency folder. */
function checkedLinkPath(path: string): string {
  const root = LINK_FOLDERS.find((folder) => path.startsWith(`${folder}/`));
  const rest = root === undefined ? [] : path.slice(root.length + 1).split('/');
  const fits = normalize(path) === path && (rest.length === 1 || (rest.length === 2 && DEPENDENCY_FOLDER.test(rest[0]!)));
  if (!fits) throw new ExecutionError(`the record names a unit link outside systemd's link folders: ${JSON.stringify(path)}`);
  return path;
}

/**
 * Creates the recorded links that are missing (and a dependency folder that
 * went with them), never following a link on the way. A link already there
 * with the same target is kept; anything else at that name is left alone and
 * reported. Returns how many links were made; systemd must be reloaded after.
 */
export function putLinksBack(links: readonly UnitLink[]): number {
  let made = 0;
  for (const link of links) {
    const path = checkedLinkPath(link.path);
    const parent = dirname(path);
    if (!lstatSync(parent, { throwIfNoEntry: false })) {
      const { folder, name } = Folder.ofFile(parent);
      withFolder(() => folder, (grandparent) => grandparent.makeFolder(name, 0o755));
    }
    const { folder, name } = Folder.ofFile(path);
    withFolder(() => folder, (held) => {
      const existing = held.lstat(name);
      if (existing?.isSymbolicLink() && held.readLink(name) === link.target) return;
      if (existing) throw new ExecutionError(`${path} is no longer free (something else was put there since): left alone`);
      held.symlink(link.target, name);
      made++;
    });
  }
  return made;
}

/**
 * systemctl cannot mask a unit whose own file is in /etc/systemd/system (the
 * mask link would have to take the file's place). /etc/systemd/system.control
 * comes before that folder in systemd's search path and lasts across reboots,
 * so a link to /dev/null there masks the unit without touching its file.
 * `systemctl unmask` does not look there: the restore removes it.
 */
const CONTROL_FOLDER = '/etc/systemd/system.control';

export function placeControlMask(unit: string): void {
  if (!lstatSync(CONTROL_FOLDER, { throwIfNoEntry: false })) {
    const { folder, name } = Folder.ofFile(CONTROL_FOLDER);
    withFolder(() => folder, (etc) => etc.makeFolder(name, 0o755));
  }
  withFolder(() => Folder.open(CONTROL_FOLDER), (control) => control.symlink('/dev/null', unit));
}

/** Removes the mask placeControlMask made, and nothing else of that name. Returns whether there was one. */
export function removeControlMask(unit: string): boolean {
  if (!lstatSync(CONTROL_FOLDER, { throwIfNoEntry: false })) return false;
  return withFolder(() => Folder.open(CONTROL_FOLDER), (control) => {
    if (!control.lstat(unit)?.isSymbolicLink() || control.readLink(unit) !== '/dev/null') return false;
    control.unlink(unit);
    return true;
  });
}
