import type { AlertSeverity, AutomationLevel, Verdict } from '@quell/contracts';

/** Files every agent's antivirus knows by hash (the agent also knows them by their first bytes). */
export const BUILT_IN_SIGNATURES: ReadonlyMap<string, string> = new Map([
  ['275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f', 'EICAR-Test-File'],
]);

/** Where droppers and downloads land first: temporary, shared-memory and download folders (Linux and Windows). */
const TEMP_FOLDERS = [
  /^\/tmp\//, /^\/var\/tmp\//, /^\/dev\/shm\//, /^\/home\/[^/]+\/Downloads\//, /^\/root\/Downloads\//,
  /^[a-z]:\\windows\\temp\\/i, /^[a-z]:\\users\\[^\\]+\\appdata\\local\\temp\\/i, /^[a-z]:\\users\\[^\\]+\\downloads\\/i,
];
/** Core (system) folders: what the operating system itself runs from. */
const CORE_FOLDERS = [
  /^\/(usr|bin|sbin|lib|lib32|lib64|boot|etc)\//,
  /^[a-z]:\\windows\\/i, /^[a-z]:\\program files( \(x86\))?\\/i,
];

export const inTempFolder = (path: string): boolean => TEMP_FOLDERS.some((folder) => folder.test(path));
export const inCoreFolder = (path: string): boolean => CORE_FOLDERS.some((folder) => folder.test(path));

export interface FileFacts {
  sha256: string;
  path: string | null;
  /** The highest severity among the alerts that name the file. */
  severity: AlertSeverity;
  /** Indicators in the device's scope: the action of the one for this hash, if any. */
  indicator: { action: 'allow' | 'audit' | 'block' | 'block_and_remediate'; title: string } | null;
  /**
   * From the device's evidence, for every file judged there (named by an alert or found running):
   * whether a cron line or systemd unit runs it; undefined when there is no evidence of either, false
   * when it runs and nothing launches it.
   */
  launchedFromPersistence?: boolean;
}

/**
 * A file's verdict and the reason, in this order:
 * 1. an allow indicator: no threats found, whatever else is said of it;
 * 2. a block (or block-and-remediate) indicator, or a built-in signature: malicious;
 * 3. an executable in a temp or download folder that a cron line or systemd
 *    unit launches — malware making itself persistent — is malicious, and so is
 *    a high-severity detection of a file in such a folder, where droppers land
 *    and nothing is installed;
 * 4. a process running from such a folder, and any other file a medium or
 *    high alert names, is suspicious;
 * 5. otherwise (low or informational alerts, audit indicators): no threats found.
 */
export function fileVerdict(file: FileFacts): { verdict: Verdict; reason: string } {
  if (file.indicator?.action === 'allow') return { verdict: 'no_threats_found', reason: `allowed by indicator "${file.indicator.title}"` };
  if (file.indicator?.action === 'block' || file.indicator?.action === 'block_and_remediate') return { verdict: 'malicious', reason: `block indicator "${file.indicator.title}"` };
  const signature = BUILT_IN_SIGNATURES.get(file.sha256);
  if (signature) return { verdict: 'malicious', reason: `built-in signature ${signature}` };
  if (file.launchedFromPersistence && file.path !== null && inTempFolder(file.path)) return { verdict: 'malicious', reason: 'an executable in a temp or download folder that a persistence entry launches' };
  if (file.severity === 'high' && file.path !== null && inTempFolder(file.path)) return { verdict: 'malicious', reason: 'high-severity detection of a file in a temp or download folder' };
  if (file.launchedFromPersistence === false && file.path !== null && inTempFolder(file.path)) return { verdict: 'suspicious', reason: 'a process running from a temp or download folder' };
  if (file.severity === 'high' || file.severity === 'medium') return { verdict: 'suspicious', reason: `named by a ${file.severity}-severity alert` };
  return { verdict: 'no_threats_found', reason: `named only by ${file.severity} alerts${file.indicator ? ` (audit indicator "${file.indicator.title}")` : ''}` };
}

/**
 * Whether remediating this file waits for an analyst (DESIGN.md §2): the
 * device group's automation level for malicious files; suspicious ones always wait.
 */
export function needsApproval(level: AutomationLevel, verdict: Verdict, path: string | null): boolean {
  if (verdict !== 'malicious') return true;
  switch (level) {
    case 'full': return false;
    case 'semi_any_folder': return true;
    case 'semi_core_folders': return path === null || inCoreFolder(path);
    case 'semi_non_temp_folders': return path === null || !inTempFolder(path);
    case 'none': return true;
  }
}
