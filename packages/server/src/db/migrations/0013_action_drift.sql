-- Each device where an action's effect was found lifted (a firewall reload, a remount, a deleted table)
-- and put back by its agent: how often, when first and last, and what was found the last time.
CREATE TABLE action_drift (
  action_id TEXT NOT NULL REFERENCES actions(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  count INTEGER NOT NULL,
  first_at BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  detail TEXT NOT NULL,
  -- 1 when the effect held again afterwards, 0 when the agent could not put it back
  repaired INTEGER NOT NULL,
  PRIMARY KEY (action_id, device_id)
);
