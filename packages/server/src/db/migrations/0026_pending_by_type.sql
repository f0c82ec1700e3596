-- What waits for approval, by type: a few thousand among a million actions, counted by every
-- summary (the Action center's badge, Home). This index holds only them, with the columns that count
-- reads. Its term is pendingApproval (db/predicates.ts), written with the literal SQLite needs to
-- match a partial index. (Per device, actions_device_status already answers from the index alone.)
CREATE INDEX actions_pending_by_type ON actions (type, requested_at, group_id) WHERE status = 'pending_approval';
