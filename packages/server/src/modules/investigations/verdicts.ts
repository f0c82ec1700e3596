import type { AlertSeverity, AutomationLevel, FileOwner, Verdict } from '@quell/contracts';

/** Files every agent's antivirus knows by hash (the agent also knows them by their first bytes). */
export const BUILT_IN_SIGNATURES: ReadonlyMap<string, string> = new Map([
  ['275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f', 'EICAR-Test-File'],
]);

/** A multi-engine scan (VirusTotal) that this many engines flag makes a file malicious; fewer, suspicious. */
export const MALICIOUS_DETECTIONS = 5;
/** A hash seen on this many devices or more is common in the fleet: a medium alert alone does not make it suspicious. */
export const COMMON_DEVICES = 10;

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

/**
 * Whether a Linux path lies in a hidden folder: one whose name starts with a
 * dot, anywhere but directly in a user's home, where every program keeps its
 * settings (`~/.config`, `~/.local`). `/var/tmp/.x/`, `/usr/lib/.cache/` and
 * `~/.config/.x/` are hidden.
 */
export function inHiddenFolder(path: string): boolean {
  const folders = path.split('/').slice(1, -1);
  const inHome = (i: number): boolean => (i === 1 && folders[0] === 'root') || (i === 2 && folders[0] === 'home');
  return path.startsWith('/') && folders.some((name, i) => name.startsWith('.') && name !== '.' && name !== '..' && !inHome(i));
}

/** Everything known about one file on one device, from its alerts, the device's evidence and the fleet. */
export interface FileFacts {
  /** Null while the file is known only by SHA-1, MD5 or path and its device has not hashed it. */
  sha256: string | null;
  path: string | null;
  /** The highest severity among the alerts that name the file; null when none does (the agent found it). */
  severity: AlertSeverity | null;
  /** Indicators in the device's scope for any of its hashes: allow wins over block, block over audit. */
  indicator: { action: 'allow' | 'audit' | 'block' | 'block_and_remediate'; title: string } | null;
  /** The most engines of a multi-engine scan that an alert says flagged it. */
  detections: { engine: string; positives: number; total: number } | null;
  /** Who put it there, as the device's evidence says: Quell, or a package (its checksum matching or not). */
  owner: FileOwner | null;
  /** The process running it on the device, when the evidence shows one. */
  pid: number | null;
  /** The persistence entries that launch it ("cron /etc/cron.d/x"); null without evidence from the device. */
  launchers: readonly string[] | null;
  /** On how many devices of the fleet its hash was seen (this one included); null when not known. */
  devices: number | null;
  /** A process of a judged file that this one started (`parent`) or was started by (`child`), as the device's process tree shows. */
  related?: { relation: 'child' | 'parent'; pid: number; path: string; verdict: Verdict } | null;
}

export interface Judgement {
  verdict: Verdict;
  /** The rule that decided, with the facts that made it. */
  reason: string;
  /** Every fact known, in words, for the evidence tab. */
  facts: string[];
}

const detected = (d: NonNullable<FileFacts['detections']>): string => `${d.positives} of ${d.total} engines flag it (${d.engine})`;

const relatedFact = (r: NonNullable<FileFacts['related']>): string =>
  `${r.relation === 'child' ? 'started by' : 'started'} pid ${r.pid} (${r.path}), which is ${r.verdict === 'no_threats_found' ? 'no threat' : r.verdict}`;

/** The facts in words, for an analyst reading the evidence. */
export function describeFacts(file: FileFacts): string[] {
  const facts: string[] = [];
  if (file.owner?.kind === 'quell') facts.push("Quell's own file");
  if (file.owner?.kind === 'package') facts.push(`installed by the ${file.owner.manager} package ${file.owner.name}${file.owner.verified ? ', unchanged' : ', changed since (its checksum no longer matches)'}`);
  if (file.indicator) facts.push(`${file.indicator.action.replaceAll('_', ' ')} indicator "${file.indicator.title}"`);
  const signature = file.sha256 === null ? undefined : BUILT_IN_SIGNATURES.get(file.sha256);
  if (signature) facts.push(`built-in signature ${signature}`);
  if (file.detections) facts.push(detected(file.detections));
  if (file.path !== null && inTempFolder(file.path)) facts.push('in a temp or download folder');
  if (file.path !== null && inHiddenFolder(file.path)) facts.push('in a hidden folder');
  if (file.pid !== null) facts.push(`running as pid ${file.pid}`);
  if (file.launchers !== null) facts.push(file.launchers.length > 0 ? `launched by ${file.launchers.join(', ')}` : 'no persistence launches it');
  facts.push(file.severity === null ? 'named by no alert: found by the agent' : `named by ${file.severity === 'informational' ? 'an' : 'a'} ${file.severity}-severity alert`);
  if (file.devices !== null) facts.push(file.devices <= 1 ? 'seen on no other device in the fleet' : `seen on ${file.devices} devices in the fleet`);
  if (file.related) facts.push(relatedFact(file.related));
  return facts;
}

/**
 * A file's verdict: the first of these rules that applies, with the facts
 * that made it. The same rules judge every file, whether an alert named it
 * or the agent found it.
 *
 * 1. Quell's own files are never threats.
 * 2. An allow indicator: no threats found, whatever else is said of it.
 * 3. A block (or block-and-remediate) indicator, or a built-in signature: malicious.
 * 4. Installed by a package and unchanged since (its checksum matches): no threats found.
 * 5. Started by a malicious or suspicious process: the same verdict; a
 *    process in a temp, download or hidden folder that started one: suspicious
 *    (outside those folders it is more likely the victim, a server exploited).
 * 6. Flagged by MALICIOUS_DETECTIONS engines or more of a multi-engine scan: malicious.
 * 7. In a temp, download or hidden folder and launched by persistence: malicious.
 * 8. Named by a high-severity alert and in a temp or download folder: malicious.
 * 9. Flagged by fewer engines: suspicious.
 * 10. Named by an alert, running from a temp or download folder: suspicious.
 * 11. Named by a high alert, or by a medium one unless its hash is common
 *     in the fleet (COMMON_DEVICES) and it lies in no temp or hidden folder: suspicious.
 * 12. Otherwise: no threats found.
 */
export function fileVerdict(file: FileFacts): Judgement {
  const facts = describeFacts(file);
  const judged = (verdict: Verdict, reason: string): Judgement => ({ verdict, reason, facts });
  const temp = file.path !== null && inTempFolder(file.path);
  const hidden = file.path !== null && inHiddenFolder(file.path);
  const where = temp ? 'a temp or download folder' : 'a hidden folder';
  const named = file.severity !== null;
  const flagged = file.detections === null ? null : detected(file.detections);

  if (file.owner?.kind === 'quell') return judged('no_threats_found', "Quell's own file: never remediated");
  if (file.indicator?.action === 'allow') return judged('no_threats_found', `allowed by indicator "${file.indicator.title}"`);
  if (file.indicator?.action === 'block' || file.indicator?.action === 'block_and_remediate') return judged('malicious', `block indicator "${file.indicator.title}"`);
  const signature = file.sha256 === null ? undefined : BUILT_IN_SIGNATURES.get(file.sha256);
  if (signature) return judged('malicious', `built-in signature ${signature}`);
  if (file.owner?.kind === 'package' && file.owner.verified) return judged('no_threats_found', `installed by the ${file.owner.manager} package ${file.owner.name} and unchanged since`);
  const related = file.related;
  if (related?.relation === 'child' && related.verdict !== 'no_threats_found') return judged(related.verdict, relatedFact(related));
  if (related?.relation === 'parent' && related.verdict !== 'no_threats_found' && (temp || hidden)) return judged('suspicious', `in ${where}, and ${relatedFact(related)}`);
  if (file.detections && file.detections.positives >= MALICIOUS_DETECTIONS) return judged('malicious', flagged!);
  if ((temp || hidden) && file.launchers !== null && file.launchers.length > 0) return judged('malicious', `an executable in ${where} that a persistence entry launches: ${file.launchers.join(', ')}`);
  if (file.severity === 'high' && temp) return judged('malicious', 'high-severity detection of a file in a temp or download folder');
  if (file.detections && file.detections.positives > 0) return judged('suspicious', flagged!);
  if (named && temp && file.pid !== null) return judged('suspicious', 'a process running from a temp or download folder');
  if (file.severity === 'high') return judged('suspicious', 'named by a high-severity alert');
  if (file.severity === 'medium') {
    if (file.devices !== null && file.devices >= COMMON_DEVICES && !temp && !hidden) return judged('no_threats_found', `named only by medium alerts, and common in the fleet (on ${file.devices} devices)`);
    return judged('suspicious', 'named by a medium-severity alert');
  }
  const audit = file.indicator?.action === 'audit' ? ` (audit indicator "${file.indicator.title}")` : '';
  return judged('no_threats_found', named ? `named only by ${file.severity} alerts${audit}` : `found by the agent, and nothing makes it a threat${audit}`);
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
