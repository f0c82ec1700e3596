import type { Alert, AlertOrigin, AlertSeverity, Evidence } from '@quell/contracts';
import type { AlertsTable } from '../../db/schema.ts';

/** An alert as clients see it: its evidence and MITRE tags as stored, as data. */
export function presentAlert(row: AlertsTable): Alert {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    severity: row.severity as AlertSeverity,
    category: row.category,
    detectionSource: row.detection_source,
    externalId: row.external_id,
    deviceId: row.device_id,
    deviceName: row.device_name,
    deviceGroupId: row.group_id,
    occurredAt: new Date(row.occurred_at).toISOString(),
    receivedAt: new Date(row.received_at).toISOString(),
    status: row.status as Alert['status'],
    classification: row.classification as Alert['classification'],
    determination: row.determination as Alert['determination'],
    updatedAt: new Date(row.updated_at).toISOString(),
    updatedBy: row.updated_by,
    evidence: JSON.parse(row.evidence) as Evidence[],
    incidentId: row.incident_id,
    ruleId: row.rule_id,
    mitreTechniques: JSON.parse(row.mitre_techniques) as string[],
    mitreTactics: JSON.parse(row.mitre_tactics) as string[],
    origin: row.origin === null ? null : (JSON.parse(row.origin) as AlertOrigin),
  };
}
