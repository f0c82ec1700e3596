-- Who may read an audit entry: the device groups it concerns, and the user who acted.
-- Neither is part of the hash chain: they decide visibility, like user_device_groups, and the
-- content they are derived from (target, actor) is.

-- JSON array of the ids of the device groups of the devices the entry concerns; [] when those
-- devices are in no group (or an indicator applies to every group); NULL when it concerns no device
-- (users, tokens, settings, sign-ins), which only unscoped Security Administrators and up read.
ALTER TABLE audit_log ADD COLUMN group_ids TEXT;
-- The user (or the owner of the token) who acted; NULL for the system, agents and automation.
-- Left NULL for entries written before: a name alone does not tell a user from a system actor.
ALTER TABLE audit_log ADD COLUMN actor_user_id TEXT;

-- Entries written before: the groups their targets are in now.
UPDATE audit_log SET group_ids = (
  SELECT CASE WHEN t.group_id IS NULL THEN '[]' ELSE '["' || t.group_id || '"]' END
  FROM (
    SELECT 'action' AS kind, id, group_id FROM actions
    UNION ALL SELECT 'device', id, group_id FROM devices
    UNION ALL SELECT 'alert', id, group_id FROM alerts
    UNION ALL SELECT 'investigation', id, group_id FROM investigations
  ) t WHERE t.kind = audit_log.target_type AND t.id = audit_log.target_id
) WHERE target_type IN ('action', 'device', 'alert', 'investigation');
-- An incident whose alerts span several groups (or none) is left to unscoped readers.
UPDATE audit_log SET group_ids = (
  SELECT CASE WHEN COUNT(DISTINCT al.group_id) = 1 AND COUNT(al.group_id) = COUNT(*) THEN '["' || MIN(al.group_id) || '"]' ELSE '[]' END
  FROM alerts al WHERE al.incident_id = audit_log.target_id
) WHERE target_type = 'incident';
UPDATE audit_log SET group_ids = (SELECT ind.device_group_ids FROM indicators ind WHERE ind.id = audit_log.target_id) WHERE target_type = 'indicator';
UPDATE audit_log SET group_ids = '["' || target_id || '"]' WHERE target_type = 'device_group' AND target_id IS NOT NULL;
-- A device-related entry whose target is gone or unnamed still concerns devices.
UPDATE audit_log SET group_ids = '[]' WHERE group_ids IS NULL AND target_type IN ('action', 'device', 'alert', 'investigation', 'incident', 'indicator');
