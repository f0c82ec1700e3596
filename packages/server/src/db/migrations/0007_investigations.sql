-- Automated investigations: one per device at a time, joined by the alerts that arrive meanwhile.

CREATE TABLE investigations (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id),
  device_name TEXT NOT NULL,
  group_id TEXT,
  status TEXT NOT NULL,
  -- the next step to run: collect, verdicts, expand, remediate, wait; done when it has ended
  step TEXT NOT NULL,
  started_by TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  ended_at BIGINT,
  updated_at BIGINT NOT NULL,
  -- time spent waiting for decisions: closed periods, and the open one's start
  waiting_ms BIGINT NOT NULL,
  waiting_since BIGINT,
  -- a step is run by one server at a time: whoever holds the lease
  run_after BIGINT NOT NULL,
  locked_by TEXT,
  locked_until BIGINT
);
CREATE INDEX investigations_due ON investigations (step, run_after);
CREATE INDEX investigations_device ON investigations (device_id, status);

CREATE TABLE investigation_alerts (
  investigation_id TEXT NOT NULL REFERENCES investigations(id),
  alert_id TEXT NOT NULL REFERENCES alerts(id),
  PRIMARY KEY (investigation_id, alert_id)
);

CREATE TABLE investigation_entities (
  id TEXT PRIMARY KEY,
  investigation_id TEXT NOT NULL REFERENCES investigations(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  path TEXT,
  verdict TEXT,
  reason TEXT,
  action_id TEXT
);
CREATE INDEX investigation_entities_investigation ON investigation_entities (investigation_id);

CREATE TABLE investigation_log (
  id TEXT PRIMARY KEY,
  investigation_id TEXT NOT NULL REFERENCES investigations(id),
  step TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  ended_at BIGINT NOT NULL,
  result TEXT NOT NULL
);
CREATE INDEX investigation_log_investigation ON investigation_log (investigation_id, started_at);
