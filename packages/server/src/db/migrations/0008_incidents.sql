-- Incidents: alerts correlated by device and time, or by shared evidence across devices.

CREATE TABLE incidents (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  status TEXT NOT NULL,
  severity TEXT NOT NULL,
  first_activity_at BIGINT NOT NULL,
  last_activity_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX incidents_activity ON incidents (status, last_activity_at);

ALTER TABLE alerts ADD COLUMN incident_id TEXT REFERENCES incidents(id);
CREATE INDEX alerts_incident ON alerts (incident_id);
