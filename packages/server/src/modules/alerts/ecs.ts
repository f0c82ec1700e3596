import type { AlertSeverity, Platform } from '@quell/contracts';
import { Type, type Static } from 'typebox';
import {
  EvidenceList, type MappedAlert, address, baseName, firstText, hash, integer, isoTime, mitreTechniques, record, severityFromLevel, text, uniqueTexts, withoutUndefined,
} from './alert-mapping.ts';
import { registryEvidence, windowsEventEvidence } from './windows-events.ts';

/**
 * An Elastic Common Schema document: an Elastic Security alert (kibana.alert.*,
 * or signal.* before 7.15), an Elastic Defend alert, or an ECS event from a
 * Beat (Winlogbeat relaying Sysmon, Auditbeat). Fields may be nested or
 * dotted ("host.name") as Elasticsearch returns either. Only `@timestamp` is
 * required; everything read is bounded by the document limits (alert-mapping.ts).
 */
export const EcsDocumentSchema = Type.Object({
  '@timestamp': Type.String({ minLength: 1, maxLength: 64 }),
}, { additionalProperties: true });
export type EcsDocument = Static<typeof EcsDocumentSchema>;

/**
 * The document with dotted keys made nested ("host.name": x → host: {name: x}),
 * merged with what is nested already; Elasticsearch's _source may hold either.
 */
export function nestDottedKeys(value: unknown, depth = 0): unknown {
  if (Array.isArray(value)) return value.map((item) => nestDottedKeys(item, depth + 1));
  if (typeof value !== 'object' || value === null || depth > 40) return value;
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) {
    const parts = key.split('.').filter(Boolean);
    if (parts.length === 0) continue;
    let target = out;
    for (const part of parts.slice(0, -1)) {
      const next = target[part];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) target[part] = {};
      target = target[part] as Record<string, unknown>;
    }
    const last = parts[parts.length - 1]!;
    const nested = nestDottedKeys(child, depth + 1);
    const existing = target[last];
    target[last] = isPlainObject(existing) && isPlainObject(nested) ? { ...existing, ...nested } : nested;
  }
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A nested field by its dotted ECS name. */
function field(doc: Record<string, unknown>, name: string): unknown {
  let value: unknown = doc;
  for (const part of name.split('.')) value = isPlainObject(value) ? value[part] : undefined;
  return value;
}

/** Kibana's severities (critical above high) and risk scores 0–100 in Quell's four severities. */
function severityOf(doc: Record<string, unknown>): AlertSeverity {
  const named = firstText(field(doc, 'kibana.alert.severity'), field(doc, 'signal.rule.severity'), field(doc, 'kibana.alert.rule.parameters.severity'))?.toLowerCase();
  if (named === 'critical' || named === 'high') return 'high';
  if (named === 'medium' || named === 'low') return named;
  const risk = integer(field(doc, 'kibana.alert.risk_score') ?? field(doc, 'signal.rule.risk_score') ?? field(doc, 'event.risk_score'), 100);
  if (risk !== undefined) return risk >= 73 ? 'high' : risk >= 47 ? 'medium' : risk >= 21 ? 'low' : 'informational';
  // ECS event.severity is the source's own scale; Elastic Defend writes 0–100 like a risk score.
  const severity = integer(field(doc, 'event.severity'), 100);
  if (severity !== undefined) return severity >= 73 ? 'high' : severity >= 47 ? 'medium' : severity >= 21 ? 'low' : 'informational';
  return field(doc, 'event.kind') === 'alert' ? 'medium' : severityFromLevel(0);
}

/** What an ECS `event.type` says happened to a file or registry entry. */
function changeOf(doc: Record<string, unknown>): 'added' | 'modified' | 'deleted' | undefined {
  const types = uniqueTexts([field(doc, 'event.type'), field(doc, 'event.action')], 64, 10).map((t) => t.toLowerCase());
  if (types.some((t) => t === 'creation' || t === 'created' || t === 'file_create_event')) return 'added';
  if (types.some((t) => t === 'deletion' || t === 'deleted' || t === 'file_delete_event')) return 'deleted';
  if (types.some((t) => t === 'change' || t === 'modification' || t === 'updated' || t === 'rename' || t === 'overwrite')) return 'modified';
  return undefined;
}

function platformOf(doc: Record<string, unknown>): Platform {
  const os = (firstText(field(doc, 'host.os.type'), field(doc, 'host.os.platform'), field(doc, 'host.os.family'), field(doc, 'host.os.name')) ?? '').toLowerCase();
  if (os.includes('windows') || field(doc, 'winlog') !== undefined || field(doc, 'registry') !== undefined) return 'windows';
  if (os.includes('mac') || os.includes('darwin')) return 'macos';
  return 'linux';
}

/** A process and the one that started it, as ECS `process.*` (or `process.parent.*`) describes them. */
function processEvidence(list: EvidenceList, process: Record<string, unknown>, user: unknown): void {
  const path = text(process.executable);
  const name = text(process.name, 1024) ?? (path ? baseName(path) : undefined);
  if (!name) return;
  const hashes = record(process.hash);
  const parent = record(process.parent);
  const parentPath = text(parent.executable);
  const parentName = text(parent.name, 1024) ?? (parentPath ? baseName(parentPath) : undefined);
  list.add(withoutUndefined({
    kind: 'process' as const, name, path, pid: integer(process.pid),
    commandLine: text(process.command_line, 32_768) ?? (Array.isArray(process.args) ? uniqueTexts(process.args, 8192, 1000).join(' ').slice(0, 32_768) || undefined : undefined),
    sha256: hash(hashes.sha256, 64), sha1: hash(hashes.sha1, 40), md5: hash(hashes.md5, 32),
    user: text(user, 256),
    parent: parentName ? withoutUndefined({ name: parentName, path: parentPath, commandLine: text(parent.command_line, 32_768), pid: integer(parent.pid) }) : undefined,
  }));
}

/**
 * Maps an ECS document to Quell's alert model: the rule (Kibana's or the
 * source's), its MITRE ATT&CK techniques and tactics (threat.*), the host
 * (agent.id, host.id, host.name / hostname, host.ip), and as evidence the
 * process with its parent, the file with its hashes and change, the user
 * (and the one whose rights it ran with),
 * source and destination addresses, DNS question, URL, registry entry, and
 * Sysmon's EventData relayed by Winlogbeat (winlog.event_data).
 */
export function fromEcs(input: EcsDocument): MappedAlert {
  const doc = nestDottedKeys(input) as Record<string, unknown>;
  const list = new EvidenceList();
  const userName = text(field(doc, 'user.name'), 256);
  const userDomain = text(field(doc, 'user.domain'), 256);
  const qualifiedUser = userName && userDomain ? `${userDomain}\\${userName}` : userName;

  processEvidence(list, record(field(doc, 'process')), qualifiedUser);
  const filePath = text(field(doc, 'file.path')) ?? (text(field(doc, 'file.directory')) && text(field(doc, 'file.name')) ? `${text(field(doc, 'file.directory'))}/${text(field(doc, 'file.name'))}` : undefined);
  const fileHashes = record(field(doc, 'file.hash'));
  list.file(filePath, withoutUndefined({ sha256: hash(fileHashes.sha256, 64), sha1: hash(fileHashes.sha1, 40), md5: hash(fileHashes.md5, 32), change: changeOf(doc) }));
  const dll = record(field(doc, 'dll'));
  if (text(dll.path)) list.file(text(dll.path), withoutUndefined({ sha256: hash(record(dll.hash).sha256, 64), sha1: hash(record(dll.hash).sha1, 40), md5: hash(record(dll.hash).md5, 32) }));

  const registry = record(field(doc, 'registry'));
  const registryPath = text(registry.path);
  const registryKey = text(registry.key) ? `${text(registry.hive) ? `${text(registry.hive)}\\` : ''}${text(registry.key)}` : undefined;
  if (registryPath || registryKey) {
    const data = firstText(record(registry.data).strings);
    if (registryKey) list.add(withoutUndefined({ kind: 'registry_key' as const, key: registryKey, value: text(registry.value, 1024), data: data?.slice(0, 4096), change: changeOf(doc) }));
    else list.add(registryEvidence(registryPath!, { valueEvent: text(registry.value) !== undefined, data, change: changeOf(doc) }));
  }

  // Winlogbeat's Sysmon and Security events keep the raw EventData next to the ECS fields.
  const winlog = record(field(doc, 'winlog'));
  let winTechniques: string[] = [];
  const eventData = record(winlog.event_data);
  if (Object.keys(eventData).length > 0) {
    const sysmon = /sysmon/i.test(text(winlog.provider_name) ?? text(winlog.channel) ?? '');
    winTechniques = windowsEventEvidence(list, eventData, integer(winlog.event_id) ?? integer(field(doc, 'event.code')), sysmon).techniques;
  }

  list.user(qualifiedUser);
  // The user whose rights the process ran with: root behind a user's sudo or su is evidence in its own right.
  list.user(text(field(doc, 'user.effective.name'), 256), field(doc, 'user.effective.domain'));
  list.ip(field(doc, 'source.ip'), 'source', field(doc, 'source.port')).ip(field(doc, 'destination.ip'), 'destination', field(doc, 'destination.port'));
  const query = text(field(doc, 'dns.question.name'), 1024);
  if (query) list.url(query);
  list.url(firstText(field(doc, 'url.full'), field(doc, 'url.original')));

  const threats = [field(doc, 'threat'), field(doc, 'kibana.alert.rule.threat'), field(doc, 'signal.rule.threat')];
  const tactics = threats.flatMap((t) => (Array.isArray(t) ? t : [t])).map((t) => record(record(t).tactic).name);

  const hostIps = [field(doc, 'host.ip')].flat().map((ip) => address(ip)).filter((ip): ip is string => ip !== undefined);
  const agentId = text(field(doc, 'agent.id'), 128);
  const hostId = text(field(doc, 'host.id'), 128);
  const names = uniqueTexts([field(doc, 'host.name'), field(doc, 'host.hostname'), field(doc, 'winlog.computer_name')], 255, 3);
  const ruleName = firstText(field(doc, 'kibana.alert.rule.name'), field(doc, 'signal.rule.name'), field(doc, 'rule.name'));
  const message = text(field(doc, 'message'), 10_000);
  const title = (ruleName ?? firstText(field(doc, 'event.action')) ?? message?.split('\n')[0] ?? 'ECS event').slice(0, 500);
  const description = firstText(field(doc, 'kibana.alert.reason'), field(doc, 'signal.reason')) ?? message;
  const category = firstText(field(doc, 'event.category'), field(doc, 'event.dataset'), field(doc, 'event.module')) ?? 'ecs';
  const externalId = firstText(field(doc, 'kibana.alert.uuid'), field(doc, 'signal.id'), field(doc, 'event.id'), field(doc, 'winlog.record_id') && hostId ? `${hostId}:${text(field(doc, 'winlog.record_id'))}` : undefined);
  const occurredAt = isoTime(field(doc, 'kibana.alert.original_time')) ?? isoTime(field(doc, 'signal.original_time')) ?? isoTime(input['@timestamp']) ?? input['@timestamp'];
  const ruleId = firstText(field(doc, 'kibana.alert.rule.rule_id'), field(doc, 'signal.rule.rule_id'), field(doc, 'rule.id'), field(doc, 'kibana.alert.rule.uuid'));
  return {
    alert: {
      title,
      ...(description && description !== title ? { description: description.slice(0, 10_000) } : {}),
      severity: severityOf(doc),
      category: category.slice(0, 128),
      detectionSource: 'elastic',
      ...(externalId ? { externalId: externalId.slice(0, 256) } : {}),
      occurredAt,
      evidence: list.list(),
      ...(ruleId ? { ruleId: ruleId.slice(0, 128) } : {}),
      mitreTechniques: mitreTechniques(threats.flatMap((t) => (Array.isArray(t) ? t : [t])).map((t) => [record(t).technique]), winTechniques),
      mitreTactics: uniqueTexts(tactics, 128, 20),
    },
    origin: {
      agentId: agentId ?? null,
      agentName: text(field(doc, 'agent.name'), 255) ?? null,
      agentIp: hostIps[0] ?? null,
      location: firstText(field(doc, 'event.dataset'), field(doc, 'event.module'), field(doc, 'winlog.channel')) ?? null,
      previousOutput: null,
    },
    host: {
      source: 'elastic',
      // The Elastic agent's id and the host's own id are both the host's across renames.
      sourceIds: uniqueTexts([agentId, hostId], 128, 2),
      names,
      addresses: hostIps.slice(0, 16),
      platform: platformOf(doc),
    },
  };
}
