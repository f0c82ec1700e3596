import type { Evidence } from '@quell/contracts';
import { Type, type Static } from 'typebox';
import {
  EvidenceList, type MappedAlert, address, baseName, firstText, hash, integer, isoTime, mitreTechniques, record, severityFromLevel, text, uniqueTexts, withoutUndefined,
} from './alert-mapping.ts';
import { windowsEventEvidence } from './windows-events.ts';

/**
 * The alert JSON of Wazuh (alerts.json, one object per alert, as the
 * manager writes it and its integrations post it). What the mapping reads is
 * typed and bounded; the rest of Wazuh's fields pass through unread, bounded
 * by the document limits (alert-mapping.ts).
 */
export const WazuhAlertSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  timestamp: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:?\\d{2})$' }),
  rule: Type.Object({
    level: Type.Integer({ minimum: 0, maximum: 16 }),
    description: Type.String({ minLength: 1, maxLength: 500 }),
    id: Type.Optional(Type.String({ maxLength: 32 })),
    groups: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
    mitre: Type.Optional(Type.Object({
      id: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 50 })),
      tactic: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 20 })),
      technique: Type.Optional(Type.Array(Type.String({ maxLength: 256 }), { maxItems: 50 })),
    })),
  }),
  agent: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 255 }),
    id: Type.Optional(Type.String({ maxLength: 64 })),
    ip: Type.Optional(Type.String({ maxLength: 64 })),
  }),
  manager: Type.Optional(Type.Object({ name: Type.Optional(Type.String({ maxLength: 255 })) })),
  full_log: Type.Optional(Type.String({ maxLength: 65_536 })),
  previous_output: Type.Optional(Type.String({ maxLength: 65_536 })),
  location: Type.Optional(Type.String({ maxLength: 4096 })),
  syscheck: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type WazuhAlert = Static<typeof WazuhAlertSchema>;

/** Rule groups that say where the event came from rather than what it is. */
const GENERIC_GROUPS = new Set(['ossec', 'syslog', 'local', 'wazuh', 'windows', 'sysmon']);

const CHANGES: Record<string, 'added' | 'modified' | 'deleted'> = { added: 'added', readded: 'added', modified: 'modified', deleted: 'deleted' };

/** A registry entry, not a file: Wazuh's syscheck reports both with `path`. */
function isRegistry(syscheck: Record<string, unknown>, groups: readonly string[]): boolean {
  return /^HKEY_/i.test(text(syscheck.path) ?? '') || syscheck.value_name !== undefined || syscheck.arch !== undefined || groups.some((g) => g.startsWith('syscheck_registry'));
}

/** A file integrity event: the file (or registry entry) with its change and its hashes before and after; with who-data, the process that made it. */
function syscheckEvidence(list: EvidenceList, syscheck: Record<string, unknown>, groups: readonly string[]): void {
  const path = text(syscheck.path);
  if (!path) return;
  const change = CHANGES[text(syscheck.event) ?? ''];
  if (isRegistry(syscheck, groups)) {
    list.add(withoutUndefined({ kind: 'registry_key' as const, key: path, value: text(syscheck.value_name, 1024), change }));
    return;
  }
  const before = withoutUndefined({ sha256: hash(syscheck.sha256_before, 64), sha1: hash(syscheck.sha1_before, 40), md5: hash(syscheck.md5_before, 32) });
  list.file(path, {
    sha256: hash(syscheck.sha256_after, 64), sha1: hash(syscheck.sha1_after, 40), md5: hash(syscheck.md5_after, 32),
    change, before: Object.keys(before).length > 0 ? before : undefined,
  });
  // Who-data: the process and user that made the change.
  const audit = record(syscheck.audit);
  const processPath = text(record(audit.process).name);
  if (processPath) {
    const parent = text(record(audit.process).parent_name);
    list.add(withoutUndefined({
      kind: 'process' as const, name: baseName(processPath), path: processPath, pid: integer(record(audit.process).id),
      user: text(record(audit.user).name, 256),
      parent: parent ? withoutUndefined({ name: baseName(parent), path: parent, pid: integer(record(audit.process).ppid) }) : undefined,
    }));
  }
  list.user(record(audit.user).name);
}

/** VirusTotal's verdict on a file the file integrity monitor reported: path, hashes, and how many engines flagged it. */
function virusTotalEvidence(list: EvidenceList, virustotal: Record<string, unknown>): void {
  const source = record(virustotal.source);
  const path = text(source.file);
  if (!path) return;
  const positives = integer(virustotal.positives, 10_000);
  const total = integer(virustotal.total, 10_000);
  list.file(path, {
    sha1: hash(source.sha1, 40) ?? hash(virustotal.sha1, 40), md5: hash(source.md5, 32),
    ...(text(virustotal.found) === '1' && positives !== undefined && total !== undefined ? { detections: { engine: 'virustotal', positives, total } } : {}),
  });
}

/**
 * Wazuh's Windows eventchannel reader escapes backslashes and double quotes
 * in every EventData value (`C:\\\\Windows\\\\…` in alerts.json): undone here so
 * paths and command lines are the ones on the host.
 */
function unescapedEventData(eventData: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(eventData).map(([key, value]) => [key, typeof value === 'string' ? value.replace(/\\(["\\])/g, '$1') : value]));
}

/** Linux audit (auditd) events: the executable, its command line from the execve arguments, and the file it touched. */
function auditEvidence(list: EvidenceList, audit: Record<string, unknown>): void {
  const exe = text(audit.exe);
  const execve = record(audit.execve);
  const args = Object.keys(execve).filter((k) => /^a\d+$/.test(k)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))).map((k) => text(execve[k], 8192)).filter(Boolean);
  const name = text(audit.command, 1024) ?? (exe ? baseName(exe) : undefined);
  if (name) {
    list.add(withoutUndefined({
      kind: 'process' as const, name, path: exe, pid: integer(audit.pid),
      commandLine: args.length > 0 ? args.join(' ').slice(0, 32_768) : undefined,
    }));
  }
  const file = text(record(audit.file).name);
  if (file && /^\//.test(file)) list.file(file);
}

/**
 * Maps a Wazuh alert to Quell's alert model: file integrity events (files
 * and registry entries) with their change and hashes, VirusTotal's verdicts,
 * rootcheck's files, auditd's processes, Windows events relayed in
 * `data.win` (Sysmon and the Security log), and the addresses, users, URLs
 * and commands Wazuh's decoders put in `data`. The rule's id and MITRE
 * ATT&CK techniques, the agent and the log it came from are kept.
 */
export function fromWazuh(alert: WazuhAlert): MappedAlert {
  const data = alert.data ?? {};
  const groups = alert.rule.groups ?? [];
  const list = new EvidenceList();
  if (alert.syscheck) syscheckEvidence(list, alert.syscheck, groups);
  virusTotalEvidence(list, record(data.virustotal));
  // rootcheck and other decoders name a file in `data.file`.
  const dataFile = text(data.file);
  if (dataFile && /^(\/|[A-Za-z]:\\)/.test(dataFile)) list.file(dataFile);
  auditEvidence(list, record(data.audit));
  const win = record(data.win);
  let winTechniques: string[] = [];
  if (Object.keys(win).length > 0) {
    const system = record(win.system);
    const sysmon = /sysmon/i.test(text(system.providerName) ?? text(system.channel) ?? '');
    winTechniques = windowsEventEvidence(list, unescapedEventData(record(win.eventdata)), integer(system.eventID), sysmon).techniques;
  }
  list.ip(data.srcip, 'source', data.srcport).ip(data.dstip, 'destination', data.dstport);
  list.user(data.srcuser).user(data.dstuser);
  list.url(data.url);
  const command = text(data.command, 32_768);
  if (command) list.add({ kind: 'process', name: command.split(/\s+/)[0]!.slice(0, 1024), commandLine: command });

  const category = groups.find((g) => !GENERIC_GROUPS.has(g)) ?? groups[0] ?? 'wazuh';
  const windows = Object.keys(win).length > 0 || list.list().some((e: Evidence) => e.kind === 'registry_key');
  const agentIp = text(alert.agent.ip, 64);
  const manager = alert.manager?.name ?? 'wazuh';
  return {
    alert: {
      title: alert.rule.description,
      ...(alert.full_log ? { description: alert.full_log.slice(0, 10_000) } : {}),
      severity: severityFromLevel(alert.rule.level),
      category: category.slice(0, 128),
      detectionSource: 'wazuh',
      // Alert ids are unique per Wazuh manager.
      externalId: `${manager}:${alert.id}`.slice(0, 256),
      occurredAt: isoTime(alert.timestamp) ?? alert.timestamp,
      evidence: list.list(),
      ...(alert.rule.id ? { ruleId: alert.rule.id } : {}),
      mitreTechniques: mitreTechniques(alert.rule.mitre?.id ?? [], winTechniques),
      mitreTactics: uniqueTexts(alert.rule.mitre?.tactic ?? [], 128, 20),
    },
    origin: {
      agentId: alert.agent.id ?? null,
      agentName: alert.agent.name,
      agentIp: agentIp ?? null,
      location: alert.location ?? null,
      previousOutput: alert.previous_output?.slice(0, 10_000) ?? null,
    },
    host: {
      source: 'wazuh',
      // Agent ids are unique per manager.
      sourceIds: alert.agent.id ? [`${manager}/${alert.agent.id}`] : [],
      names: uniqueTexts([alert.agent.name, firstText(record(win.system).computer)], 255, 2),
      addresses: [address(agentIp)].filter((a): a is string => a !== undefined),
      platform: windows ? 'windows' : 'linux',
    },
  };
}
