-- At most one open action per device, action type and entity: a second proposal of the same
-- remediation (another investigation, another source) joins the first instead of running twice.

-- What makes an action the same as another of its type on its device; the same as entityKey() in
-- packages/contracts/src/catalogue.ts. Null for types that may repeat (undos, scans, evidence requests).
ALTER TABLE actions ADD COLUMN entity_key TEXT;

UPDATE actions SET entity_key = CASE
  WHEN type IN ('quarantine_file', 'stop_and_quarantine_file') THEN
    CASE WHEN entity_sha256 IS NOT NULL THEN 'sha256:' || lower(entity_sha256) WHEN entity_path IS NOT NULL THEN 'path:' || entity_path ELSE NULL END
  WHEN type IN ('isolate_device', 'restrict_code_execution') THEN 'device'
  -- A task removed by line is keyed with its line (entityKey): read from JSON differently by each
  -- database, so such rows are left without a key, like any key too long to store as it is.
  WHEN type = 'remove_scheduled_task' AND parameters LIKE '%"line"%' THEN NULL
  WHEN type IN ('contain_device', 'contain_user', 'remove_registry_key', 'stop_service', 'disable_driver', 'remove_scheduled_task') THEN
    CASE WHEN entity_path IS NOT NULL THEN 'path:' || entity_path || '|name:' || entity_name ELSE 'name:' || entity_name END
  ELSE NULL
END;
-- Longer keys are stored as their SHA-256 digest by the server (entity-key.ts); the databases cannot all compute it.
UPDATE actions SET entity_key = NULL WHERE length(entity_key) > 512;

-- Duplicates already open before this migration stay as they are, but only the oldest of each counts
-- as the open one: the others lose their key, so the index below can be built.
UPDATE actions SET entity_key = NULL
WHERE entity_key IS NOT NULL AND status IN ('pending_approval', 'queued', 'in_progress') AND EXISTS (
  SELECT 1 FROM actions earlier
  WHERE earlier.device_id = actions.device_id AND earlier.type = actions.type AND earlier.entity_key = actions.entity_key
    AND earlier.status IN ('pending_approval', 'queued', 'in_progress')
    AND (earlier.requested_at < actions.requested_at OR (earlier.requested_at = actions.requested_at AND earlier.id < actions.id))
);

-- Concurrent proposals cannot both get in: the second insert finds the first (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX actions_open_once ON actions (device_id, type, entity_key)
  WHERE status IN ('pending_approval', 'queued', 'in_progress') AND entity_key IS NOT NULL;

-- Earlier decisions on the same thing (a rejection is remembered) and where a file is quarantined now.
CREATE INDEX actions_entity_key ON actions (entity_key, device_id);
