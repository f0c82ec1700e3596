-- Indicators of compromise (and of trust): what is always allowed, audited or blocked.

CREATE TABLE indicators (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  value TEXT NOT NULL,
  action TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  -- JSON array of device group ids; empty: every device
  device_group_ids TEXT NOT NULL,
  expires_at BIGINT,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX indicators_value ON indicators (type, value);
