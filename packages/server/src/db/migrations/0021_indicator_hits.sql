-- Where indicators matched on endpoints, as their agents report it: one row per indicator,
-- device and hour, with how many times, when first and last, and the last hit's details
-- (remote address, file, process, user) as JSON.
CREATE TABLE indicator_hits (
  indicator_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  hour BIGINT NOT NULL,
  action TEXT NOT NULL,
  count BIGINT NOT NULL,
  first_at BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  last_hit TEXT NOT NULL,
  PRIMARY KEY (indicator_id, device_id, hour)
);
CREATE INDEX indicator_hits_by_device ON indicator_hits (device_id, last_at);

-- The last indicator hits report each agent sent that was counted: one sent again is not counted twice.
ALTER TABLE agents ADD COLUMN hits_seq BIGINT;
