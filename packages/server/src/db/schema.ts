/** Row types of the tables in migrations/. Times are epoch milliseconds. */
export interface UsersTable {
  id: string;
  username: string;
  display_name: string;
  role: string;
  password_hash: string;
  disabled: number;
  created_at: number;
}

export interface SessionsTable {
  id_hash: string;
  user_id: string;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  user_id: string;
  secret_hash: string;
  scopes: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface DeviceGroupsTable {
  id: string;
  name: string;
  rank: number;
  automation_level: string;
  created_at: number;
  /** JSON DeviceGroupRule, or null: the group takes devices only by hand. */
  rule: string | null;
}

export interface UserDeviceGroupsTable {
  user_id: string;
  group_id: string;
}

export interface DevicesTable {
  id: string;
  name: string;
  platform: string;
  group_id: string | null;
  created_at: number;
  last_seen_at: number | null;
  /** 1 when an administrator chose its group: rules leave it there. */
  group_pinned: number;
  /** The detection source whose alert made Quell learn of it (an unmanaged device); null (or absent on insert) otherwise. */
  discovered_from?: string | null;
}

export interface ActionsTable {
  id: string;
  type: string;
  status: string;
  entity_type: string;
  entity_name: string;
  entity_sha256: string | null;
  entity_path: string | null;
  parameters: string;
  device_id: string;
  device_name: string;
  group_id: string | null;
  source: string;
  investigation_id: string | null;
  incident_id: string | null;
  approval_id: string | null;
  requested_by: string;
  requested_by_user_id: string | null;
  requested_at: number;
  comment: string | null;
  decided_by: string | null;
  decided_at: number | null;
  decision_comment: string | null;
  expires_at: number | null;
  updated_at: number;
  undo_of: string | null;
  undone_by: string | null;
  result: string | null;
  command_jws: string | null;
  deliver_by: number | null;
  /** Containment types: the desired-state version at which this action took effect. */
  state_version: number | null;
  /** Containment types: the agents' enforcement when the action ended (JSON). */
  enforcement: string | null;
  /** What makes it the same action as another of its type on its device (entityKey); null for types that may repeat. */
  entity_key: string | null;
}

export interface ActionEventsTable {
  id: string;
  action_id: string;
  at: number;
  event: string;
  from_status: string | null;
  to_status: string;
  actor: string;
  comment: string | null;
}

export interface AuditLogTable {
  seq: number;
  at: number;
  actor: string;
  source_ip: string | null;
  kind: string;
  target_type: string;
  target_id: string | null;
  before_json: string | null;
  after_json: string | null;
  prev_hash: string;
  hash: string;
  /** JSON array of the device groups the entry concerns ([] for devices in no group); null when it concerns no device. Not hashed. */
  group_ids: string | null;
  /** The user who acted (or whose token did), for "their own acts"; null for system actors. Not hashed. */
  actor_user_id: string | null;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface JobsTable {
  name: string;
  run_at: number;
  locked_by: string | null;
  locked_until: number | null;
  last_run_at: number | null;
  last_error: string | null;
}

export interface EnrolmentTokensTable {
  id: string;
  name: string;
  secret_hash: string;
  uses_left: number;
  created_by: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

export interface AgentsTable {
  device_id: string;
  public_key: string;
  facts: string;
  enrolled_at: number;
  revoked_at: number | null;
  state_version: number | null;
  state_error: string | null;
  /** JSON object: action id → why this agent could not enforce that entry. */
  state_failures: string | null;
  /** When offboarding was asked; the agent is revoked once it reports it has offboarded itself. */
  offboard_requested_at: number | null;
  /** 1: release what Quell put in force on the device when offboarding; 0: leave it. */
  offboard_release_effects: number | null;
  /** JSON OffboardedPayload: what the agent did. */
  offboard_report: string | null;
  /** The sequence number of the last indicator hits report counted. */
  hits_seq: number | null;
}

export interface AlertsTable {
  id: string;
  title: string;
  description: string | null;
  severity: string;
  category: string;
  detection_source: string;
  external_id: string | null;
  device_id: string;
  device_name: string;
  group_id: string | null;
  occurred_at: number;
  received_at: number;
  status: string;
  classification: string | null;
  determination: string | null;
  updated_at: number;
  updated_by: string | null;
  /** JSON array of the evidence entities. */
  evidence: string;
  incident_id: string | null;
  /** The detection rule's id in its engine. */
  rule_id: string | null;
  /** JSON arrays of MITRE ATT&CK technique ids and tactic names. */
  mitre_techniques: string;
  mitre_tactics: string;
  /** JSON AlertOrigin: where the engine saw it; null when the sender said nothing of it. */
  origin: string | null;
}

export interface DeviceSourceIdsTable {
  /** wazuh, elastic */
  source: string;
  /** The engine's own id for the host. */
  source_id: string;
  device_id: string;
  updated_at: number;
}

export interface DeviceAddressesTable {
  device_id: string;
  address: string;
  seen_at: number;
}

export interface IncidentsTable {
  id: string;
  title: string;
  status: string;
  severity: string;
  first_activity_at: number;
  last_activity_at: number;
  created_at: number;
  updated_at: number;
}

export interface AlertEvidenceTable {
  alert_id: string;
  /** sha256, sha1, md5, path, process, service, driver, scheduled_task, registry_key, user, ip, url */
  kind: string;
  value: string;
}

export interface IndicatorsTable {
  id: string;
  type: string;
  value: string;
  action: string;
  title: string;
  description: string | null;
  /** JSON array of device group ids; empty means every device. */
  device_group_ids: string;
  expires_at: number | null;
  created_by: string;
  created_at: number;
  updated_at: number;
}

export interface InvestigationsTable {
  id: string;
  device_id: string;
  device_name: string;
  group_id: string | null;
  status: string;
  /** The next step to run (collect, verdicts, expand, remediate, wait), or done. */
  step: string;
  started_by: string;
  started_at: number;
  ended_at: number | null;
  updated_at: number;
  waiting_ms: number;
  waiting_since: number | null;
  run_after: number;
  locked_by: string | null;
  locked_until: number | null;
  /** JSON: the devices an expansion would add, when it was asked, and the analyst's decision once made. */
  pending_expansion: string | null;
  /** JSON array of the steps that failed, when and why (the newest few); null when none did. */
  problems: string | null;
  /** How many times in a row the current step has failed. */
  step_attempts: number;
  /** Why it ended, in words; null while it runs (and for investigations that ended before it was kept). */
  conclusion?: string | null;
  /** The step a failed investigation could not get past; null otherwise. */
  failed_step?: string | null;
}

export interface InvestigationAlertsTable { investigation_id: string; alert_id: string }

export interface InvestigationEntitiesTable {
  id: string;
  investigation_id: string;
  device_id: string;
  kind: string;
  value: string;
  path: string | null;
  verdict: string | null;
  reason: string | null;
  action_id: string | null;
  /** JSON array of the facts the verdict weighed, in words. */
  facts: string | null;
  sha1: string | null;
  md5: string | null;
}

export interface FileSightingsTable { sha256: string; device_id: string; path: string | null; first_seen: number; last_seen: number }

/** Where an indicator matched, per device and hour (epoch milliseconds of its start). */
export interface IndicatorHitsTable {
  indicator_id: string;
  device_id: string;
  hour: number;
  action: string;
  count: number;
  first_at: number;
  last_at: number;
  /** JSON IndicatorHit: the last hit's remote end, file, process and user. */
  last_hit: string;
}

export interface InvestigationLogTable { id: string; investigation_id: string; step: string; started_at: number; ended_at: number; result: string }

export interface ActionDriftTable {
  action_id: string;
  device_id: string;
  count: number;
  first_at: number;
  last_at: number;
  detail: string;
  /** 1 when the effect held again afterwards, 0 when the agent could not put it back. */
  repaired: number;
}

export interface DeviceStateTable {
  device_id: string;
  /** isolation, code_restriction, contained_user */
  kind: string;
  /** The user name for contained_user; empty otherwise. */
  entity: string;
  action_id: string;
}

export interface DesiredStateTable {
  name: string;
  version: number;
  jws: string | null;
  updated_at: number;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: number;
}

export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  device_groups: DeviceGroupsTable;
  user_device_groups: UserDeviceGroupsTable;
  devices: DevicesTable;
  actions: ActionsTable;
  action_events: ActionEventsTable;
  action_drift: ActionDriftTable;
  audit_log: AuditLogTable;
  settings: SettingsTable;
  jobs: JobsTable;
  enrolment_tokens: EnrolmentTokensTable;
  agents: AgentsTable;
  desired_state: DesiredStateTable;
  device_state: DeviceStateTable;
  alerts: AlertsTable;
  alert_evidence: AlertEvidenceTable;
  device_source_ids: DeviceSourceIdsTable;
  device_addresses: DeviceAddressesTable;
  incidents: IncidentsTable;
  indicators: IndicatorsTable;
  investigations: InvestigationsTable;
  investigation_alerts: InvestigationAlertsTable;
  investigation_entities: InvestigationEntitiesTable;
  investigation_log: InvestigationLogTable;
  file_sightings: FileSightingsTable;
  indicator_hits: IndicatorHitsTable;
  schema_migrations: SchemaMigrationsTable;
}
