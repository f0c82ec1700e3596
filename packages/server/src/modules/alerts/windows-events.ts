import type { Evidence } from '@quell/contracts';
import { type EvidenceList, baseName, integer, mitreTechniques, sysmonHashes, text, withoutUndefined } from './alert-mapping.ts';

/**
 * A Windows event's EventData by field name with the first letter in lower
 * case: Wazuh relays Sysmon's `Image` as `image`, Winlogbeat keeps `Image`.
 */
export function eventDataFields(eventData: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(eventData).map(([key, value]) => [key.charAt(0).toLowerCase() + key.slice(1), value]));
}

/** Sysmon's registry event types that name a value (the last part of TargetObject), not a key. */
const VALUE_EVENTS = new Set(['setvalue', 'deletevalue']);

/** A Windows registry path split into its key and, for value events, the value's name. */
export function registryEvidence(targetObject: string, options: { valueEvent: boolean; data?: string; change?: 'added' | 'modified' | 'deleted' }): Evidence {
  const cut = options.valueEvent ? targetObject.lastIndexOf('\\') : -1;
  return withoutUndefined({
    kind: 'registry_key' as const,
    key: cut > 0 ? targetObject.slice(0, cut) : targetObject,
    value: cut > 0 ? targetObject.slice(cut + 1).slice(0, 1024) : undefined,
    data: options.data?.slice(0, 4096),
    change: options.change,
  });
}

/**
 * The evidence in a Windows event's EventData: Sysmon's process, parent,
 * hashes, user, created or deleted file, connection, DNS query and registry
 * object, and the Security log's accounts, address and process. `eventId` is
 * the System EventID (Sysmon's numbering for its channel).
 */
export function windowsEventEvidence(list: EvidenceList, rawEventData: Record<string, unknown>, eventId: number | undefined, sysmon: boolean): { techniques: string[] } {
  const d = eventDataFields(rawEventData);
  const image = text(d.image);
  const hashes = sysmonHashes(d.hashes);
  const user = text(d.user, 512);
  const parentImage = text(d.parentImage);
  // The process the event is about: its image (Sysmon) or the new process (Security 4688).
  const processPath = image ?? text(d.newProcessName) ?? text(d.processName);
  if (processPath) {
    const parentPath = parentImage ?? text(d.parentProcessName);
    // Sysmon's Hashes are the image's, except where the event is about a file (6, 7, 15, 23, 26).
    const processHashes = sysmon && ![6, 7, 15, 23, 26].includes(eventId ?? 0) ? hashes : {};
    list.add(withoutUndefined({
      kind: 'process' as const,
      name: baseName(processPath),
      path: processPath,
      pid: integer(d.processId) ?? integer(d.newProcessId),
      commandLine: text(d.commandLine, 32_768),
      user: user ? user.slice(0, 256) : undefined,
      ...processHashes,
      parent: parentPath ? withoutUndefined({ name: baseName(parentPath), path: parentPath, commandLine: text(d.parentCommandLine, 32_768), pid: integer(d.parentProcessId) }) : undefined,
    }));
  }
  // Process access / remote thread: the process acted on.
  const target = text(d.targetImage);
  if (target) list.add(withoutUndefined({ kind: 'process' as const, name: baseName(target), path: target, pid: integer(d.targetProcessId) }));
  const source = text(d.sourceImage);
  if (source) list.add(withoutUndefined({ kind: 'process' as const, name: baseName(source), path: source, pid: integer(d.sourceProcessId) }));
  if (user) list.user(user);
  for (const [name, domain] of [[d.targetUserName, d.targetDomainName], [d.subjectUserName, d.subjectDomainName]] as const) {
    const account = text(name, 256);
    // Machine accounts (NAME$) and the anonymous logon say nothing about who acted.
    if (account && !account.endsWith('$') && !/^ANONYMOUS LOGON$/i.test(account)) list.user(account, domain);
  }
  // File created (11), its stream (15), deleted (23, 26), creation time changed (2); a loaded image (7) or driver (6).
  const targetFile = text(d.targetFilename) ?? text(d.imageLoaded);
  if (targetFile) {
    const change = eventId === 11 || eventId === 15 ? 'added' : eventId === 23 || eventId === 26 ? 'deleted' : eventId === 2 ? 'modified' : undefined;
    list.file(targetFile, { ...hashes, ...(change ? { change } : {}) });
  }
  list.ip(d.sourceIp, 'source', d.sourcePort).ip(d.destinationIp, 'destination', d.destinationPort).ip(d.ipAddress, 'source', d.ipPort);
  const query = text(d.queryName, 1024);
  if (query) list.url(query);
  const registry = text(d.targetObject);
  if (registry) {
    const eventType = (text(d.eventType) ?? '').toLowerCase();
    const change = eventType === 'createkey' ? 'added' : eventType.startsWith('delete') ? 'deleted' : eventType === 'setvalue' || eventType === 'renamekey' ? 'modified' : undefined;
    list.add(registryEvidence(registry, { valueEvent: VALUE_EVENTS.has(eventType) || eventId === 13, data: text(d.details), change }));
  }
  // Security 4698–4702: a scheduled task created, deleted, enabled, disabled or updated.
  const task = text(d.taskName, 1024);
  if (task) list.add({ kind: 'scheduled_task', name: task });
  // Sysmon configurations in wide use tag rules "technique_id=T1055,technique_name=…".
  return { techniques: mitreTechniques(text(d.ruleName) ?? '') };
}

