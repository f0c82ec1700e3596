import { isIP } from 'node:net';
import { type AlertSeverity, type CreateAlertBody, type Evidence } from '@quell/contracts';
import { Type, type Static } from 'typebox';

/**
 * The alert JSON of Wazuh (alerts.json, one object per alert, as the
 * manager writes it and its integrations post it). Only what the mapping
 * reads is required; the rest of Wazuh's fields pass unvalidated and unused.
 */
export const WazuhAlertSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 128 }),
  timestamp: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:?\\d{2})$' }),
  rule: Type.Object({
    level: Type.Integer({ minimum: 0, maximum: 16 }),
    description: Type.String({ minLength: 1, maxLength: 500 }),
    id: Type.Optional(Type.String({ maxLength: 32 })),
    groups: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
  }),
  agent: Type.Object({ name: Type.String({ minLength: 1, maxLength: 255 }) }),
  manager: Type.Optional(Type.Object({ name: Type.Optional(Type.String({ maxLength: 255 })) })),
  full_log: Type.Optional(Type.String({ maxLength: 65_536 })),
  syscheck: Type.Optional(Type.Object({
    path: Type.Optional(Type.String({ maxLength: 4096 })),
    sha256_after: Type.Optional(Type.String()),
    sha1_after: Type.Optional(Type.String()),
    md5_after: Type.Optional(Type.String()),
  })),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type WazuhAlert = Static<typeof WazuhAlertSchema>;

/** Wazuh rule levels 0–15 in Quell's four severities (Wazuh's own guidance: 12+ is high importance). */
function severityOf(level: number): AlertSeverity {
  if (level >= 12) return 'high';
  if (level >= 8) return 'medium';
  if (level >= 4) return 'low';
  return 'informational';
}

/** Rule groups that say where the event came from rather than what it is. */
const GENERIC_GROUPS = new Set(['ossec', 'syslog', 'local', 'wazuh']);

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);
const hash = (value: unknown, length: number): string | undefined => {
  const candidate = text(value)?.toLowerCase();
  return candidate && new RegExp(`^[0-9a-f]{${length}}$`).test(candidate) ? candidate : undefined;
};

/**
 * Maps a Wazuh alert to Quell's alert model on the device named like the
 * Wazuh agent: file integrity events become file evidence with their
 * hashes, and source/destination addresses, users, URLs and commands in
 * `data` become evidence of their kind.
 */
export function fromWazuh(alert: WazuhAlert, deviceId: string): CreateAlertBody {
  const data = alert.data ?? {};
  const evidence: Evidence[] = [];
  const path = text(alert.syscheck?.path);
  if (path) {
    const sha256 = hash(alert.syscheck?.sha256_after, 64);
    const sha1 = hash(alert.syscheck?.sha1_after, 40);
    const md5 = hash(alert.syscheck?.md5_after, 32);
    evidence.push({ kind: 'file', path: path.slice(0, 4096), ...(sha256 ? { sha256 } : {}), ...(sha1 ? { sha1 } : {}), ...(md5 ? { md5 } : {}) });
  }
  for (const key of ['srcip', 'dstip']) {
    const address = text(data[key]);
    if (address && isIP(address) !== 0) evidence.push({ kind: 'ip', address });
  }
  for (const key of ['srcuser', 'dstuser']) {
    const name = text(data[key]);
    if (name) evidence.push({ kind: 'user', name: name.slice(0, 256) });
  }
  const url = text(data.url);
  if (url) evidence.push({ kind: 'url', url: url.slice(0, 4096) });
  const command = text(data.command);
  if (command) evidence.push({ kind: 'process', name: command.split(/\s+/)[0]!.slice(0, 1024), commandLine: command.slice(0, 32_768) });
  const category = alert.rule.groups?.find((g) => !GENERIC_GROUPS.has(g)) ?? 'wazuh';
  return {
    title: alert.rule.description,
    ...(alert.full_log ? { description: alert.full_log.slice(0, 10_000) } : {}),
    severity: severityOf(alert.rule.level),
    category: category.slice(0, 128),
    detectionSource: 'wazuh',
    // Alert ids are unique per Wazuh manager.
    externalId: `${alert.manager?.name ?? 'wazuh'}:${alert.id}`.slice(0, 256),
    deviceId,
    occurredAt: new Date(Date.parse(alert.timestamp.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'))).toISOString(),
    evidence: evidence.slice(0, 100),
  };
}
