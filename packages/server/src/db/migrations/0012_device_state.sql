-- What is in force on each device (isolation, code restriction, each contained user), kept as actions
-- complete and are undone, so that listing devices never has to search their history.
CREATE TABLE device_state (
  device_id TEXT NOT NULL REFERENCES devices(id),
  -- isolation, code_restriction, contained_user
  kind TEXT NOT NULL,
  -- the user name for contained_user; empty otherwise
  entity TEXT NOT NULL,
  action_id TEXT NOT NULL,
  PRIMARY KEY (device_id, kind, entity)
);
CREATE INDEX device_state_action ON device_state (action_id);

-- What the history already says: the latest completed action of each kind, not undone.
INSERT INTO device_state (device_id, kind, entity, action_id)
SELECT a.device_id,
       CASE a.type WHEN 'isolate_device' THEN 'isolation' WHEN 'restrict_code_execution' THEN 'code_restriction' ELSE 'contained_user' END,
       CASE a.type WHEN 'contain_user' THEN a.entity_name ELSE '' END,
       a.id
FROM actions a
WHERE a.status = 'completed' AND a.type IN ('isolate_device', 'restrict_code_execution', 'contain_user')
  AND NOT EXISTS (
    SELECT 1 FROM actions b
    WHERE b.device_id = a.device_id AND b.type = a.type AND b.status = 'completed'
      AND (a.type <> 'contain_user' OR b.entity_name = a.entity_name)
      AND (b.updated_at > a.updated_at OR (b.updated_at = a.updated_at AND b.id > a.id))
  );
