-- Alerts from detection sources, with their evidence.

CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  description TEXT,
  severity TEXT NOT NULL,
  category TEXT NOT NULL,
  detection_source TEXT NOT NULL,
  external_id TEXT,
  device_id TEXT NOT NULL REFERENCES devices(id),
  device_name TEXT NOT NULL,
  -- copied from the device, as on actions, so that scoping never needs a join
  group_id TEXT,
  occurred_at BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  classification TEXT,
  determination TEXT,
  updated_at BIGINT NOT NULL,
  updated_by TEXT,
  -- the evidence entities as sent (JSON array)
  evidence TEXT NOT NULL
);
CREATE INDEX alerts_received ON alerts (received_at, id);
CREATE INDEX alerts_device ON alerts (device_id, received_at);
-- A sender that retries gets its stored alert back instead of a second one.
CREATE UNIQUE INDEX alerts_external ON alerts (detection_source, external_id);

-- One row per file hash, address, user… an alert names: how the same threat is found across alerts and devices.
CREATE TABLE alert_evidence (
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (alert_id, kind, value)
);
CREATE INDEX alert_evidence_value ON alert_evidence (kind, value);
