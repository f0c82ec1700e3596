-- The containment actions not released (contain_device, undone_by unset): a few among a million
-- actions, read by every device list and every fleet state. This index holds only them, with every
-- column those reads take, so they read nothing else. Its terms are those of containmentInForce
-- (db/predicates.ts), which writes them with literals: SQLite uses a partial index only when the
-- query repeats its terms with the same constants.
CREATE INDEX actions_containment_in_force ON actions (status, device_id, entity_name, requested_at, id)
  WHERE type = 'contain_device' AND undone_by IS NULL;
